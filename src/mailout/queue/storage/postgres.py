"""The PostgreSQL storage: one queue shared by workers on any number of hosts.

``EMAIL_QUEUE_URL=postgresql://user@host:5432/db`` (any libpq URL; ``?schema=mail`` for a
schema other than ``public``; ``?notify=off`` to do without LISTEN/NOTIFY; ``?pool_size=8``).
The schema is created and upgraded by ``mailout queue migrate`` (``migrate()``); opening a
queue whose schema is missing or older than this mailout raises ``SchemaVersionError``
saying to run it.

* Claims lock their candidates with ``FOR UPDATE SKIP LOCKED``: any number of workers claim
  at once, take disjoint messages and never wait for one another.
* Enqueueing sends ``NOTIFY``: idle workers (``subscribe``) wake at once; it is delivered on
  commit only, so a rolled-back enqueue wakes nobody. Workers poll as well, so a lost
  notification delays mail by at most the poll interval.
* ``bound_to(connection)``: the same storage inside the caller's psycopg connection and
  transaction, so that mail is stored if and only if the caller's data is.
* Rate limits (token buckets, under an advisory lock) and caps on connections per mailer and
  per domain (slots leased per worker) live in the database: they hold across every worker.
* Workers register themselves; a dead worker's leases (and slots) expire and are taken over.

Every query is a named query of ``sql/postgres/queries.sql`` with DB-API ``%(name)s``
parameters; the functions of ``_pgsql`` (imported here) take any DB-API cursor, so another
connection (Django's) can run them as they are.
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any

from mailout.exceptions import MessageNotFound, SchemaVersionError
from mailout.queue.caps import Caps
from mailout.queue.limits import Bucket, Limit
from mailout.queue.models import (
    ClaimedMessage,
    MessageDetail,
    MessageSummary,
    NewMessage,
    Outcome,
    QueueStats,
    Selection,
    State,
    WorkerInfo,
)
from mailout.queue.storage import Storage
from mailout.queue.storage._claim import Widening
from mailout.queue.storage._operations import NamedOperations
from mailout.queue.storage._pgbound import BoundStorage
from mailout.queue.storage._pgcaps import SharedCaps
from mailout.queue.storage._pgconn import Connector, Listener, PgURL
from mailout.queue.storage._pgsql import (
    SCHEMA_VERSION,
    Q,
    add_events,
    claim_messages,
    delete_messages,
    first_due,
    insert_messages,
    migrate_step,
    operate,
    purge_some,
    read_message,
    read_stats,
    record_outcomes,
    release_expired,
)
from mailout.queue.storage._rows import summary_from_row, worker_params

__all__ = [
    "SCHEMA_VERSION",
    "PostgresStorage",
    "Q",
    # The SQL on any DB-API cursor (see _pgsql), for a storage over someone else's connection.
    "add_events",
    "claim_messages",
    "delete_messages",
    "first_due",
    "insert_messages",
    "migrate_step",
    "operate",
    "purge_some",
    "read_message",
    "read_stats",
    "record_outcomes",
    "release_expired",
]


class PostgresStorage(NamedOperations, Storage):
    """The queue in a PostgreSQL database (see the module docstring)."""

    def __init__(
        self,
        url: str,
        *,
        check_schema: bool = True,
        retry_for: float = 30.0,
        setting: str = "EMAIL_QUEUE_URL",
    ) -> None:
        self.url = PgURL.parse(url, setting=setting)
        self.name = self.url.name
        self.schema = self.url.schema
        self.channel = f"mailout_queue.{self.schema}"[:63]
        self._db = Connector(self.url, retry_for=retry_for)
        # Ids this process claimed and has not recorded or released, per worker: the only
        # leases its heartbeat renews.
        self._held: dict[str, set[int]] = {}
        self._held_lock = threading.Lock()
        self._listeners: builtins.list[Listener] = []
        self._widening = Widening()
        try:
            if check_schema:
                self._check_schema()
        except BaseException:
            self._db.close()
            raise

    @classmethod
    def from_url(cls, url: str, *, setting: str = "EMAIL_QUEUE_URL") -> PostgresStorage:
        return cls(url, setting=setting)

    def __repr__(self) -> str:
        return f"<PostgresStorage {self.name}>"

    def _run(
        self, doing: str, body: Callable[[Any], Any], *, again: str = "always", durable: bool = True
    ) -> Any:
        return self._db.run(doing, body, again=again, durable=durable)

    def _read(self, doing: str, body: Callable[[Any], Any]) -> Any:
        """A read of one statement: no transaction around it (one round trip, not three)."""
        return self._db.run(doing, body, transaction=False)

    def _book(self, doing: str, body: Callable[[Any], Any]) -> Any:
        """A worker's bookkeeping (claims, leases, outcomes, slots): committed without waiting
        for the WAL flush (see Connector.run). Losing one in a crash of PostgreSQL itself
        means a message delivered again, never one lost: mail is stored durably at enqueue."""
        return self._db.run(doing, body, durable=False)

    # -- schema ----------------------------------------------------------------------------

    def schema_version(self) -> int | None:
        def read(cur: Any) -> int | None:
            cur.execute(Q["has_schema"])
            if not cur.fetchone()[0]:
                return None
            cur.execute(Q["schema_version"])
            row = cur.fetchone()
            return int(row[0]) if row and str(row[0]).isdigit() else None

        return self._run("reading the schema version", read)  # type: ignore[no-any-return]

    def _check_schema(self) -> None:
        version = self.schema_version()
        if version == SCHEMA_VERSION:
            return
        if version is not None and version > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"queue database {self.name} has schema version {version}; this mailout knows "
                f"version {SCHEMA_VERSION}: upgrade mailout to use it"
            )
        found = "no queue schema" if version is None else f"schema version {version}"
        raise SchemaVersionError(
            f"queue database {self.name} has {found}; this mailout needs version "
            f"{SCHEMA_VERSION}: run `mailout queue migrate` (with the same EMAIL_QUEUE_URL)"
        )

    def migrate(self) -> builtins.list[int]:
        """Create the schema and apply the missing versions, each in its own transaction under
        an advisory lock; safe to run from several hosts at once, and again."""
        applied: builtins.list[int] = []
        sql = self._db.psycopg.sql
        with self._db.errors("migrating"), self._db.connect() as conn:
            for version in range(1, SCHEMA_VERSION + 1):
                with conn.transaction():
                    conn.execute(Q["migrate_lock"], {"schema": self.schema})
                    conn.execute(
                        sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                            sql.Identifier(self.schema)
                        )
                    )
                    conn.execute(
                        "SELECT set_config('search_path', %s, true)",
                        [self._db.search_path(conn)],
                    )
                    if migrate_step(conn.cursor(), version, lock_key=None):
                        applied.append(version)
        return applied

    # -- producers -------------------------------------------------------------------------

    def enqueue(self, messages: Iterable[NewMessage], *, now: float) -> builtins.list[int]:
        def store(cur: Any) -> builtins.list[int]:
            ids = insert_messages(cur, messages, now)
            if self.url.notify and ids:
                cur.execute(Q["notify"], {"channel": self.channel})
            return ids

        # A list can be stored again from the start; an iterator (a big batch, rendered as it
        # is stored) only if it was not started.
        again = "before-commit" if isinstance(messages, Sequence) else "before-start"
        return self._run("storing messages", store, again=again)  # type: ignore[no-any-return]

    def bound_to(self, connection: object) -> BoundStorage:
        return BoundStorage(self.url, connection)

    # -- workers ---------------------------------------------------------------------------

    def claim(
        self,
        *,
        worker: str,
        limit: int,
        lease: float,
        now: float,
        limits: Mapping[str, Limit] | None = None,
        exclude_domains: Collection[str] = (),
        exclude_mailers: Collection[str] = (),
    ) -> builtins.list[ClaimedMessage]:
        def take(cur: Any) -> builtins.list[ClaimedMessage]:
            return claim_messages(
                cur, worker, limit, lease, now, limits or {}, exclude_domains, exclude_mailers,
                where=self.name, widening=self._widening,
            )  # fmt: skip

        claimed: builtins.list[ClaimedMessage] = self._book("claiming messages", take)
        with self._held_lock:
            self._held.setdefault(worker, set()).update(m.id for m in claimed)
        return claimed

    def _let_go(self, worker: str, ids: Iterable[int]) -> None:
        with self._held_lock:
            self._held.get(worker, set()).difference_update(ids)

    def heartbeat(self, info: WorkerInfo, *, lease: float, now: float) -> int:
        with self._held_lock:
            held = sorted(self._held.get(info.id, ()))

        def beat(cur: Any) -> int:
            cur.execute(Q["save_worker"], worker_params(info))
            cur.execute(Q["forget_workers"], {"before": now - max(3600.0, 10 * lease)})
            cur.execute(Q["renew_slots"], {"worker": info.id, "until": now + lease})
            cur.execute(Q["renew_leases"], {"ids": held, "worker": info.id, "until": now + lease})
            return int(cur.rowcount)

        return self._book("renewing leases", beat)  # type: ignore[no-any-return]

    def record(
        self, outcomes: Sequence[Outcome], *, worker: str, now: float, keep_body: bool = True
    ) -> builtins.list[bool]:
        def write(cur: Any) -> builtins.list[bool]:
            return record_outcomes(cur, outcomes, worker, now, keep_body)

        done: builtins.list[bool] = self._book("recording delivery results", write)
        self._let_go(worker, (o.id for o in outcomes))
        return done

    def release(self, ids: Sequence[int], *, worker: str, now: float) -> int:
        if not ids:
            return 0

        def give_back(cur: Any) -> int:
            cur.execute(Q["release"], {"ids": list(ids), "worker": worker, "now": now})
            count = int(cur.rowcount)
            if count and self.url.notify:
                cur.execute(Q["notify"], {"channel": self.channel})
            return count

        count: int = self._book("releasing messages", give_back)
        self._let_go(worker, ids)
        return count

    def release_expired(self, *, now: float) -> int:
        def expire(cur: Any) -> int:
            count = release_expired(cur, now)
            if count and self.url.notify:
                cur.execute(Q["notify"], {"channel": self.channel})
            return count

        return self._book("releasing expired leases", expire)  # type: ignore[no-any-return]

    def unregister(self, worker: str) -> None:
        def forget(cur: Any) -> None:
            cur.execute(Q["delete_worker"], {"id": worker})
            cur.execute(Q["forget_slots"], {"worker": worker, "before": 0.0})

        self._book("unregistering a worker", forget)
        with self._held_lock:
            self._held.pop(worker, None)

    def next_due(self, *, now: float, exclude_mailers: Collection[str] = ()) -> float | None:
        skip = sorted(exclude_mailers)
        return self._read(  # type: ignore[no-any-return]
            "reading due times", lambda cur: first_due(cur, skip)
        )

    def bucket(self, name: str) -> Bucket | None:
        def read(cur: Any) -> Bucket | None:
            cur.execute(Q["bucket"], {"name": name})
            row = cur.fetchone()
            return Bucket(*row[1:]) if row else None

        return self._run("reading a rate limit", read)  # type: ignore[no-any-return]

    def caps(
        self,
        *,
        worker: str,
        domain_cap: int,
        mailer_caps: Mapping[str, int],
        lease: float,
        clock: Callable[[], float],
    ) -> Caps:
        return SharedCaps(self, worker, domain_cap, mailer_caps, lease, clock)

    def subscribe(
        self, wake: Callable[[], None], *, slots_freed: Callable[[], None] | None = None
    ) -> Callable[[], None] | None:
        if not self.url.notify:
            return None
        listener = Listener(self._db, self.channel, wake, slots_freed or wake)
        self._listeners.append(listener)
        return listener.close

    # -- operators -------------------------------------------------------------------------

    def stats(self, *, now: float, failures: int = 5) -> QueueStats:
        return self._run(  # type: ignore[no-any-return]
            "reading the queue's status", lambda cur: read_stats(cur, now, failures)
        )

    def list(self, *, state: State | None = None, limit: int = 50) -> builtins.list[MessageSummary]:
        def read(cur: Any) -> builtins.list[MessageSummary]:
            if state is None:
                cur.execute(Q["list_all"], {"limit": limit})
            else:
                cur.execute(Q["list_state"], {"state": str(state), "limit": limit})
            return [summary_from_row(row) for row in cur.fetchall()]

        return self._run("listing messages", read)  # type: ignore[no-any-return]

    def get(self, id: int) -> MessageDetail:
        detail = self._run("reading a message", lambda cur: read_message(cur, id))
        if detail is None:
            raise MessageNotFound(f"no message {id} in the queue {self.name}")
        return detail  # type: ignore[no-any-return]

    def _operate(self, name: str, kind: str, text: str, selection: Selection, now: float) -> int:
        def change(cur: Any) -> int:
            count = operate(cur, name, kind, text, selection, now)
            if count and name in ("unhold", "retry") and self.url.notify:
                cur.execute(Q["notify"], {"channel": self.channel})
            return count

        return self._run(f"{kind} messages", change)  # type: ignore[no-any-return]

    def purge(self, states: Collection[State], *, before: float, batch: int = 1000) -> int:
        total = 0
        for state in states:

            def some(cur: Any, state: State = state) -> int:
                return purge_some(cur, state, before, batch)

            while True:
                count: int = self._run("purging messages", some)
                total += count
                if count < batch:
                    break
        return total

    def close(self) -> None:
        for listener in self._listeners:
            listener.close()
        self._listeners.clear()
        self._db.close()
