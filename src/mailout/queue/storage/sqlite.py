"""The SQLite storage: one file, durable commits, safe for several processes and threads.

Durability: the database runs in WAL mode with ``synchronous=FULL``, so every commit is
fsynced to the write-ahead log before ``COMMIT`` returns; a message is on disk before
``send_messages()`` says it was stored, and survives the process being killed and the machine
losing power. Writes start with ``BEGIN IMMEDIATE``, which takes the write lock at once: two
workers can never claim the same message, and no transaction fails half-way on a lock it
could not upgrade. Every error from SQLite becomes a ``StorageError`` naming the file.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from typing import Any, Final

from mailout.exceptions import MessageNotFound, SchemaVersionError
from mailout.exceptions import StorageError as _StorageError
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
from mailout.queue.storage._claim import (
    CLAIM_WINDOW,
    Candidates,
    Widening,
    apply_limits,
    excluded,
    exhausted,
    pick_fairly,
)
from mailout.queue.storage._operations import NamedOperations
from mailout.queue.storage._rows import (
    bucket_params,
    claimed_from_row,
    events_for,
    summary_from_row,
    worker_params,
)
from mailout.queue.storage._sqlite_store import store
from mailout.queue.storage._sqlitebound import BoundSQLite, path_of_url

__all__ = ["SCHEMA_VERSION", "SQLiteStorage", "delete", "operate"]

SCHEMA_VERSION: Final = 1
Q: Final = load("sqlite")
_SCHEMA: Final = load("sqlite", "schema.sql")["create"]
_MIN_SQLITE: Final = (3, 35, 0)  # UPDATE ... RETURNING


class SQLiteStorage(NamedOperations, Storage):
    """The queue in the SQLite file at ``path`` (created with its tables when missing)."""

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 30.0) -> None:
        self.path = os.path.abspath(os.fspath(path))
        self.name = self.path
        if sqlite3.sqlite_version_info < _MIN_SQLITE:
            raise _StorageError(
                f"queue database {self.path}: SQLite {sqlite3.sqlite_version} is too old; "
                "the queue needs 3.35 or newer"
            )
        self._lock = threading.RLock()
        self._widening = Widening()
        with self._errors("open"):
            self._db = sqlite3.connect(
                self.path, timeout=timeout, isolation_level=None, check_same_thread=False
            )
        try:
            self._setup()
        except BaseException:
            self._db.close()
            raise

    @classmethod
    def from_url(cls, url: str, *, setting: str = "EMAIL_QUEUE_URL") -> SQLiteStorage:
        """``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db``."""
        return cls(path_of_url(url, setting=setting))

    def __repr__(self) -> str:
        return f"<SQLiteStorage {self.path}>"

    # -- connection --------------------------------------------------------------------------

    @contextlib.contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            code = getattr(exc, "sqlite_errorname", None)
            detail = f"{exc} ({code})" if code else str(exc)
            raise _StorageError(f"queue database {self.path}: {doing} failed: {detail}") from exc

    def _setup(self) -> None:
        with self._errors("open"):
            # WAL: readers never block the writer; FULL: each commit is fsynced (durable).
            mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise _StorageError(f"queue database {self.path}: cannot use WAL mode ({mode})")
            self._db.execute("PRAGMA synchronous = FULL")
            if not self._db.execute(Q["has_schema"]).fetchone()[0]:
                self._db.executescript(f"BEGIN IMMEDIATE;\n{_SCHEMA}\nCOMMIT;")
            row = self._db.execute(Q["schema_version"]).fetchone()
        version = int(row[0]) if row and str(row[0]).isdigit() else None
        if version != SCHEMA_VERSION:
            raise SchemaVersionError(
                f"queue database {self.path} has schema version {row[0] if row else None}; "
                f"this mailout knows version {SCHEMA_VERSION}"
                + ("; upgrade mailout to use it" if (version or 0) > SCHEMA_VERSION else "")
            )

    @contextlib.contextmanager
    def _write(self, doing: str) -> Iterator[sqlite3.Connection]:
        """One transaction holding the write lock: committed on success, rolled back on error."""
        with self._lock, self._errors(doing):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @contextlib.contextmanager
    def _read(self, doing: str) -> Iterator[sqlite3.Connection]:
        with self._lock, self._errors(doing):
            self._db.execute("BEGIN")  # one snapshot for the reads that belong together
            try:
                yield self._db
            finally:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- producers -------------------------------------------------------------------------

    def enqueue(self, messages: Iterable[NewMessage], *, now: float) -> list[int]:
        with self._write("storing messages") as db:
            return store(db, Q, messages, now=now, where=self.path)

    def bound_to(self, connection: object) -> BoundSQLite:
        """``enqueue`` on your own ``sqlite3.Connection`` to this file, in its transaction."""
        return BoundSQLite.for_file(connection, self.path)

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
    ) -> list[ClaimedMessage]:
        limits = limits or {}
        with self._write("claiming messages") as db:
            buckets = self._buckets(db) if limits else {}
            skip_mailers = [*exhausted(limits, buckets, now), *exclude_mailers]
            skip = {
                "skip_mailers": json.dumps(skip_mailers),
                "skip_domains": json.dumps(sorted(exclude_domains)),
                "now": now,
                "window": CLAIM_WINDOW * limit,
            }
            excluding = bool(skip_mailers or exclude_domains)
            query = "candidates_excluding" if excluding else "candidates"
            picked = pick_fairly(_candidates(db, Q[query], skip), limit)
            leaving_out = excluded(skip_mailers, exclude_domains)
            if excluding and len(picked) < limit and self._widening.allowed(leaving_out):
                whole = _candidates(db, Q["candidates"], skip)
                picked = self._widening.look(
                    lambda: pick_fairly(whole, limit), enough=limit, leaving_out=leaving_out
                )
            ids, changed = apply_limits(picked, limits, buckets, now)
            for name, bucket in changed.items():
                db.execute(Q["save_bucket"], {"name": name, **bucket_params(bucket)})
            if not ids:
                return []
            params = {"ids": json.dumps(ids), "worker": worker, "until": now + lease, "now": now}
            rows = {row[0]: row for row in db.execute(Q["claim"], params)}
            bodies = dict(db.execute(Q["bodies"], {"ids": params["ids"]}).fetchall())
        return [claimed_from_row(rows[i], bodies.get(i), where=self.path) for i in ids if i in rows]

    def _buckets(self, db: sqlite3.Connection) -> dict[str, Bucket]:
        return {row[0]: Bucket(*row[1:]) for row in db.execute(Q["buckets"])}

    def heartbeat(self, info: WorkerInfo, *, lease: float, now: float) -> int:
        with self._write("renewing leases") as db:
            db.execute(Q["save_worker"], worker_params(info))
            db.execute(Q["forget_workers"], {"before": now - max(3600.0, 10 * lease)})
            return db.execute(Q["renew_leases"], {"worker": info.id, "until": now + lease}).rowcount

    def record(
        self, outcomes: Sequence[Outcome], *, worker: str, now: float, keep_body: bool = True
    ) -> list[bool]:
        done: list[bool] = []
        events: list[dict[str, Any]] = []
        with self._write("recording delivery results") as db:
            for outcome in outcomes:
                params = {
                    "id": outcome.id,
                    "attempt": outcome.attempt,
                    "worker": worker,
                    "state": str(outcome.state),
                    "pending": json.dumps(outcome.recipients),
                    "due_at": outcome.due_at,
                    "delivered": outcome.delivered,
                    "summary": outcome.summary[:1000],
                    "reason": outcome.reason,
                    "now": now,
                }
                recorded = db.execute(Q["record"], params).rowcount == 1
                done.append(recorded)
                if recorded and not keep_body and outcome.state is State.SENT:
                    db.execute(Q["drop_body"], {"id": outcome.id})
                if recorded:
                    events.extend(vars_of(e) for e in events_for(outcome, now))
            db.executemany(Q["add_event"], events)
        return done

    def release(self, ids: Sequence[int], *, worker: str, now: float) -> int:
        if not ids:
            return 0
        with self._write("releasing messages") as db:
            params = {"ids": json.dumps(list(ids)), "worker": worker, "now": now}
            return db.execute(Q["release"], params).rowcount

    def release_expired(self, *, now: float) -> int:
        with self._write("releasing expired leases") as db:
            db.execute(Q["expired_lease_events"], {"now": now})
            return db.execute(Q["release_expired"], {"now": now}).rowcount

    def unregister(self, worker: str) -> None:
        with self._write("unregistering a worker") as db:
            db.execute(Q["delete_worker"], {"id": worker})

    def next_due(self, *, now: float, exclude_mailers: Collection[str] = ()) -> float | None:
        skip = json.dumps(sorted(exclude_mailers))
        with self._read("reading due times") as db:
            found = [
                row[0]
                for state in WAITING
                for priority in Priority
                for row in db.execute(
                    Q["first_due"],
                    {"state": str(state), "priority": int(priority), "skip_mailers": skip},
                )
            ]
        return min(found, default=None)

    def bucket(self, name: str) -> Bucket | None:
        with self._read("reading a rate limit") as db:
            row = db.execute(Q["bucket"], {"name": name}).fetchone()
        return Bucket(*row[1:]) if row else None

    # -- operators -------------------------------------------------------------------------

    def stats(self, *, now: float, failures: int = 5) -> QueueStats:
        with self._read("reading the queue's status") as db:
            counts = {State(state): int(n) for state, n in db.execute(Q["count_by_state"])}
            by_mailer: dict[str, dict[State, int]] = {}
            for mailer, state, n in db.execute(Q["count_by_mailer"]):
                by_mailer.setdefault(str(mailer), {})[State(state)] = int(n)
            due = [
                row[0]
                for state in WAITING
                for priority in Priority
                for row in db.execute(
                    Q["first_due"],
                    {"state": str(state), "priority": int(priority), "skip_mailers": "[]"},
                )
            ]
            retries = [
                row[0]
                for priority in Priority
                for row in db.execute(
                    Q["first_due_after"],
                    {"state": "deferred", "priority": int(priority), "now": now},
                )
            ]
            recent = [
                summary_from_row(r) for r in db.execute(Q["recent_failures"], {"limit": failures})
            ]
            workers = [WorkerInfo(*row) for row in db.execute(Q["workers"])]
        return QueueStats(
            counts={state: counts.get(state, 0) for state in State},
            oldest_due=min(due, default=None),
            next_retry=min(retries, default=None),
            recent_failures=tuple(recent),
            workers=tuple(workers),
            by_mailer=by_mailer,
        )

    def list(self, *, state: State | None = None, limit: int = 50) -> list[MessageSummary]:
        with self._read("listing messages") as db:
            if state is None:
                rows = db.execute(Q["list_all"], {"limit": limit})
            else:
                rows = db.execute(Q["list_state"], {"state": str(state), "limit": limit})
            return [summary_from_row(row) for row in rows]

    def get(self, id: int) -> MessageDetail:
        with self._read("reading a message") as db:
            row = db.execute(Q["get"], {"id": id}).fetchone()
            if row is None:
                raise MessageNotFound(f"no message {id} in the queue {self.path}")
            events = [Event(*e) for e in db.execute(Q["events"], {"id": id})]
        try:
            metadata = json.loads(row[18]).get("user", {})
        except (TypeError, ValueError, AttributeError):
            metadata = {"unreadable": str(row[18])[:200]}
        return MessageDetail(
            summary=summary_from_row(row[:18]),
            metadata=metadata,
            data=row[19],
            events=tuple(events),
            lease_owner=row[20],
            lease_until=row[21],
        )

    def _operate(self, name: str, kind: str, text: str, selection: Selection, now: float) -> int:
        with self._write(f"{kind} messages") as db:
            return operate(db, name, kind, text, selection, now)

    def purge(self, states: Collection[State], *, before: float, batch: int = 1000) -> int:
        total = 0
        for state in states:
            while True:
                with self._write("purging messages") as db:
                    params = {"state": str(state), "before": before, "limit": batch}
                    ids = json.dumps([row[0] for row in db.execute(Q["purge_pick"], params)])
                    db.execute(Q["purge_events"], {"ids": ids})
                    db.execute(Q["purge_bodies"], {"ids": ids})
                    count = db.execute(Q["purge_messages"], {"ids": ids}).rowcount
                total += count
                if count < batch:
                    break
        return total


def operate(
    db: sqlite3.Connection, name: str, kind: str, text: str, selection: Selection, now: float
) -> int:
    """An operator's change (``hold``, ``unhold``, ``expire``, ``retry``, ``retry_failed``) in
    the caller's transaction on ``db``, with one event per message changed; how many were.
    Also run on Django's own connection by mailout.django's admin."""
    if name == "retry_failed":
        ids = [row[0] for row in db.execute(Q["retry_failed"], {"now": now})]
    elif selection == "ALL":
        ids = [row[0] for row in db.execute(Q[f"{name}_all"], {"now": now})]
    else:
        params = {"ids": json.dumps([int(i) for i in selection]), "now": now}
        ids = [row[0] for row in db.execute(Q[f"{name}_ids"], params)]
    if ids:
        params = {"ids": json.dumps(ids), "now": now, "kind": kind, "text": text}
        db.execute(Q["operation_events"], params)
    return len(ids)


def delete(db: sqlite3.Connection, ids: Sequence[int]) -> int:
    """Delete messages by id with their events and bodies, in the caller's transaction on
    ``db``, except those a worker holds (``sending``: its lease decides); how many were."""
    params = {"ids": json.dumps([int(i) for i in ids])}
    gone = json.dumps([row[0] for row in db.execute(Q["delete_ids"], params)])
    db.execute(Q["purge_events"], {"ids": gone})
    db.execute(Q["purge_bodies"], {"ids": gone})
    return len(json.loads(gone))


def vars_of(event: Event) -> dict[str, Any]:
    return {name: getattr(event, name) for name in Event.__dataclass_fields__}


def _candidates(db: sqlite3.Connection, query: str, skip: Mapping[str, Any]) -> Candidates:
    """Due messages of one state and priority, by ``query`` (a window, or the whole queue)."""

    def candidates(state: State, priority: Priority, count: int) -> list[tuple[int, str]]:
        params = {**skip, "state": str(state), "priority": int(priority), "limit": count}
        return [(int(i), str(m)) for i, m in db.execute(query, params)]

    return candidates
