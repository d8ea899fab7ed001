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
parameters; the functions at the bottom of this module take any DB-API cursor, so another
connection (Django's) can run them as they are.
"""

from __future__ import annotations

import base64
import builtins
import json
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from typing import Any, Final

from mailout.exceptions import MessageNotFound, SchemaVersionError
from mailout.queue.caps import Caps
from mailout.queue.limits import Bucket, Limit
from mailout.queue.models import (
    WAITING,
    ClaimedMessage,
    Event,
    MessageDetail,
    MessageSummary,
    NewMessage,
    Outcome,
    Priority,
    QueueStats,
    Selection,
    State,
    WorkerInfo,
)
from mailout.queue.sql import load
from mailout.queue.storage import Storage
from mailout.queue.storage._claim import apply_limits, exhausted, pick_fairly
from mailout.queue.storage._pgbound import BoundStorage
from mailout.queue.storage._pgcaps import SharedCaps
from mailout.queue.storage._pgconn import Connector, Listener, PgURL
from mailout.queue.storage._rows import claimed_from_row, events_for, summary_from_row

__all__ = ["SCHEMA_VERSION", "PostgresStorage"]

Q: Final = load("postgres")
MIGRATIONS: Final = load("postgres", "schema.sql")
SCHEMA_VERSION: Final = len(MIGRATIONS)
INSERT_CHUNK: Final = 1000


class PostgresStorage(Storage):
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
                where=self.name,
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
            cur.execute(Q["save_worker"], _fields(info))
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
        return self._run(  # type: ignore[no-any-return]
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

    def subscribe(self, wake: Callable[[], None]) -> Callable[[], None] | None:
        if not self.url.notify:
            return None
        listener = Listener(self._db, self.channel, wake)
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

    def hold(self, selection: Selection, *, now: float) -> int:
        return self._operate("hold", "held", "held by an operator", selection, now)

    def unhold(self, selection: Selection, *, now: float) -> int:
        return self._operate("unhold", "released", "released by an operator", selection, now)

    def expire(self, selection: Selection, *, now: float) -> int:
        return self._operate("expire", "expired", "expired by an operator", selection, now)

    def retry(self, selection: Selection, *, now: float, failed_only: bool = False) -> int:
        if failed_only:
            return self._operate("retry_failed", "retried", "retried by an operator", ALL_, now)
        return self._operate("retry", "retried", "retried by an operator", selection, now)

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


ALL_: Final = "ALL"


# -- the SQL, on any DB-API cursor (psycopg's, or a Django connection's) -------------------------


def migrate_step(cur: Any, version: int, *, lock_key: str | None) -> bool:
    """Take the schema to ``version`` with any DB-API cursor, in its current transaction, if it
    is not there yet (the tables go to the first schema of the search path). ``lock_key``:
    take the migration's advisory lock for that schema name first (None: the caller took it).
    Django's migration (mailout/django/migrations) runs this on Django's own connection."""
    if lock_key is not None:
        cur.execute(Q["migrate_lock"], {"schema": lock_key})
    current = _version(cur)
    if current is not None and current >= version:
        return False
    cur.execute(MIGRATIONS[f"migration_{version}"])
    return True


def _version(cur: Any) -> int | None:
    cur.execute(Q["has_schema"])
    if not cur.fetchone()[0]:
        return None
    cur.execute(Q["schema_version"])
    row = cur.fetchone()
    return int(row[0]) if row and str(row[0]).isdigit() else None


def _chunks(messages: Iterable[NewMessage]) -> Iterator[builtins.list[NewMessage]]:
    chunk: builtins.list[NewMessage] = []
    for message in messages:
        chunk.append(message)
        if len(chunk) >= INSERT_CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def insert_messages(cur: Any, messages: Iterable[NewMessage], now: float) -> builtins.list[int]:
    """Store messages (an iterable consumed here: an error it raises stores none of them,
    once the caller rolls back); return their ids, in order. A chunk is three statements:
    its ids from the sequence, its rows, its bodies."""
    out: builtins.list[int] = []
    for chunk in _chunks(messages):
        cur.execute(Q["next_ids"], {"count": len(chunk)})
        ids = [int(row[0]) for row in cur.fetchall()]
        columns = _columns(chunk, ids, now)
        cur.execute(Q["insert_messages"], columns)
        inserted = {int(row[0]) for row in cur.fetchall()}
        bodies = [
            (id_, base64.b64encode(m.data).decode("ascii"))
            for m, id_ in zip(chunk, ids, strict=True)
            if id_ in inserted
        ]
        if bodies:
            cur.execute(Q["insert_bodies"], {"bodies": json.dumps(bodies)})
        for message, id_ in zip(chunk, ids, strict=True):
            if id_ in inserted:
                out.append(id_)
            else:  # its key was stored before (or earlier in this batch): that message's id
                cur.execute(Q["id_for_key"], {"key": message.key})
                out.append(int(cur.fetchone()[0]))
    return out


def _columns(chunk: Sequence[NewMessage], ids: Sequence[int], now: float) -> dict[str, Any]:
    rows = [
        {
            "id": id_,
            "key": m.key,
            "mailer": m.mailer,
            "priority": int(m.priority),
            "sender": m.sender,
            "recipients": json.dumps(m.recipients),
            "domain": m.domain,
            "message_id": m.message_id,
            "subject": m.subject,
            "size": len(m.data),
            "metadata": json.dumps(
                {"smtputf8": m.smtputf8, "eight_bit": m.eight_bit, "user": dict(m.metadata)}
            ),
            "due_at": now if m.not_before is None else m.not_before,
        }
        for m, id_ in zip(chunk, ids, strict=True)
    ]
    return {"rows": json.dumps(rows), "now": now}


def _buckets(cur: Any) -> dict[str, Bucket]:
    cur.execute(Q["buckets"])
    return {row[0]: Bucket(*row[1:]) for row in cur.fetchall()}


def claim_messages(
    cur: Any,
    worker: str,
    limit: int,
    lease: float,
    now: float,
    limits: Mapping[str, Limit],
    exclude_domains: Collection[str],
    exclude_mailers: Collection[str],
    *,
    where: str,
) -> builtins.list[ClaimedMessage]:
    buckets: dict[str, Bucket] = {}
    if limits:  # one limited claim at a time, cluster-wide: no token is spent twice
        cur.execute(Q["lock_buckets"])
        buckets = _buckets(cur)
    skip = {
        "skip_mailers": sorted({*exhausted(limits, buckets, now), *exclude_mailers}),
        "skip_domains": sorted(exclude_domains),
        "now": now,
    }

    def candidates(state: State, priority: Priority, count: int) -> builtins.list[tuple[int, str]]:
        cur.execute(
            Q["candidates"],
            {**skip, "state": str(state), "priority": int(priority), "limit": count},
        )
        return [(int(i), str(m)) for i, m in cur.fetchall()]

    ids, changed = apply_limits(pick_fairly(candidates, limit), limits, buckets, now)
    for name, bucket in changed.items():
        cur.execute(Q["save_bucket"], {"name": name, **_bucket_fields(bucket)})
    if not ids:
        return []
    cur.execute(Q["claim"], {"ids": ids, "worker": worker, "until": now + lease, "now": now})
    rows = {int(row[0]): row for row in cur.fetchall()}
    cur.execute(Q["bodies"], {"ids": ids})
    bodies = {int(m): bytes(d) for m, d in cur.fetchall()}
    return [claimed_from_row(rows[i], bodies.get(i), where=where) for i in ids if i in rows]


def record_outcomes(
    cur: Any, outcomes: Sequence[Outcome], worker: str, now: float, keep_body: bool
) -> builtins.list[bool]:
    if not outcomes:
        return []
    rows = [
        {
            "id": o.id,
            "attempt": o.attempt,
            "state": str(o.state),
            "pending": json.dumps(o.recipients),
            "due_at": o.due_at,
            "delivered": o.delivered,
            "summary": o.summary[:1000],
            "reason": o.reason,
        }
        for o in outcomes
    ]
    cur.execute(Q["record"], {"outcomes": json.dumps(rows), "worker": worker, "now": now})
    recorded = {int(row[0]) for row in cur.fetchall()}
    done = [o.id in recorded for o in outcomes]
    if not keep_body:
        dropped = [o.id for o in outcomes if o.id in recorded and o.state is State.SENT]
        if dropped:
            cur.execute(Q["drop_bodies"], {"ids": dropped})
    add_events(cur, [e for o in outcomes if o.id in recorded for e in events_for(o, now)])
    return done


def add_events(cur: Any, events: Sequence[Event]) -> None:
    if not events:
        return
    fields = Event.__dataclass_fields__
    rows = [{name: getattr(e, name) for name in fields} for e in events]
    cur.execute(Q["add_events"], {"events": json.dumps(rows)})


def release_expired(cur: Any, now: float) -> int:
    cur.execute(Q["expired_leases"], {"now": now})
    rows = cur.fetchall()
    if not rows:
        return 0
    add_events(
        cur,
        [
            Event(int(i), now, int(a), "lease-expired", text=f"the lease of worker {o} expired")
            for i, a, o in rows
        ],
    )
    cur.execute(Q["release_expired"], {"ids": [int(r[0]) for r in rows], "now": now})
    return int(cur.rowcount)


def first_due(cur: Any, skip: Sequence[str]) -> float | None:
    found = []
    for state in WAITING:
        for priority in Priority:
            cur.execute(
                Q["first_due"],
                {"state": str(state), "priority": int(priority), "skip_mailers": list(skip)},
            )
            found += [float(row[0]) for row in cur.fetchall()]
    return min(found, default=None)


def read_stats(cur: Any, now: float, failures: int) -> QueueStats:
    cur.execute(Q["count_by_state"])
    counts = {State(state): int(n) for state, n in cur.fetchall()}
    cur.execute(Q["count_by_mailer"])
    by_mailer: dict[str, dict[State, int]] = {}
    for mailer, state, n in cur.fetchall():
        by_mailer.setdefault(str(mailer), {})[State(state)] = int(n)
    retries = []
    for priority in Priority:
        cur.execute(
            Q["first_due_after"], {"state": "deferred", "priority": int(priority), "now": now}
        )
        retries += [float(row[0]) for row in cur.fetchall()]
    cur.execute(Q["recent_failures"], {"limit": failures})
    recent = [summary_from_row(r) for r in cur.fetchall()]
    cur.execute(Q["workers"])
    workers = [WorkerInfo(*row) for row in cur.fetchall()]
    return QueueStats(
        counts={state: counts.get(state, 0) for state in State},
        oldest_due=first_due(cur, []),
        next_retry=min(retries, default=None),
        recent_failures=tuple(recent),
        workers=tuple(workers),
        by_mailer=by_mailer,
    )


def read_message(cur: Any, id: int) -> MessageDetail | None:
    cur.execute(Q["get"], {"id": id})
    row = cur.fetchone()
    if row is None:
        return None
    cur.execute(Q["events"], {"id": id})
    events = [Event(*e) for e in cur.fetchall()]
    try:
        metadata = json.loads(row[18]).get("user", {})
    except (TypeError, ValueError, AttributeError):
        metadata = {"unreadable": str(row[18])[:200]}
    return MessageDetail(
        summary=summary_from_row(row[:18]),
        metadata=metadata,
        data=None if row[19] is None else bytes(row[19]),
        events=tuple(events),
        lease_owner=row[20],
        lease_until=row[21],
    )


def operate(cur: Any, name: str, kind: str, text: str, selection: Selection, now: float) -> int:
    if name == "retry_failed":
        cur.execute(Q["retry_failed"], {"now": now})
    elif selection == "ALL":
        cur.execute(Q[f"{name}_all"], {"now": now})
    else:
        cur.execute(Q[f"{name}_ids"], {"ids": [int(i) for i in selection], "now": now})
    ids = [int(row[0]) for row in cur.fetchall()]
    if ids:
        cur.execute(Q["operation_events"], {"ids": ids, "now": now, "kind": kind, "text": text})
    return len(ids)


def delete_messages(cur: Any, ids: Sequence[int]) -> int:
    """Delete messages by id with their events and bodies, in the caller's transaction, except
    those a worker holds (``sending``: its lease decides); how many were."""
    cur.execute(Q["delete_ids"], {"ids": [int(i) for i in ids]})
    gone = [int(row[0]) for row in cur.fetchall()]
    if gone:
        cur.execute(Q["purge_events"], {"ids": gone})
        cur.execute(Q["purge_bodies"], {"ids": gone})
    return len(gone)


def purge_some(cur: Any, state: State, before: float, batch: int) -> int:
    cur.execute(Q["purge_pick"], {"state": str(state), "before": before, "limit": batch})
    ids = [int(row[0]) for row in cur.fetchall()]
    if not ids:
        return 0
    cur.execute(Q["purge_events"], {"ids": ids})
    cur.execute(Q["purge_bodies"], {"ids": ids})
    cur.execute(Q["purge_messages"], {"ids": ids})
    return int(cur.rowcount)


def _bucket_fields(bucket: Bucket) -> dict[str, Any]:
    return {
        "tokens": bucket.tokens,
        "updated_at": bucket.updated_at,
        "day": bucket.day,
        "day_count": bucket.day_count,
    }


def _fields(info: WorkerInfo) -> dict[str, Any]:
    return {name: getattr(info, name) for name in WorkerInfo.__dataclass_fields__}
