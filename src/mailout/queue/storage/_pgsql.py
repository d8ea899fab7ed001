"""The PostgreSQL queue's SQL, on any DB-API cursor: psycopg's, or a Django connection's.

Each function runs named queries of ``sql/postgres/queries.sql`` (DB-API ``%(name)s``
parameters: lists as arrays, many rows as one JSON document) inside whatever transaction
the caller opened; ``PostgresStorage`` runs them in its own, and so may another connection.
They are importable from ``mailout.queue.storage.postgres`` as well.
"""

from __future__ import annotations

import base64
import builtins
import inspect
import json
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from typing import Any, Final

from mailout.queue.limits import Bucket, Limit
from mailout.queue.models import (
    WAITING,
    ClaimedMessage,
    Event,
    MessageDetail,
    NewMessage,
    Outcome,
    Priority,
    QueueStats,
    Selection,
    State,
    WorkerInfo,
)
from mailout.queue.sql import load
from mailout.queue.storage._claim import (
    CLAIM_WINDOW,
    Widening,
    apply_limits,
    excluded,
    exhausted,
    pick_fairly,
)
from mailout.queue.storage._pgrows import claimed
from mailout.queue.storage._rows import (
    bucket_params,
    events_for,
    stored_metadata,
    summary_from_row,
)

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Q",
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
    "read_version",
    "record_outcomes",
    "release_expired",
]

Q: Final = load("postgres")
MIGRATIONS: Final = load("postgres", "schema.sql")
SCHEMA_VERSION: Final = len(MIGRATIONS)
INSERT_CHUNK: Final = 1000


def migrate_step(cur: Any, version: int, *, lock_key: str | None) -> bool:
    """Take the schema to ``version`` with any DB-API cursor, in its current transaction, if it
    is not there yet (the tables go to the first schema of the search path). ``lock_key``:
    take the migration's advisory lock for that schema name first (None: the caller took it).
    Django's migration (mailout/django/migrations) runs this on Django's own connection."""
    if lock_key is not None:
        cur.execute(Q["migrate_lock"], {"schema": lock_key})
    current = read_version(cur)
    if current is not None and current >= version:
        return False
    cur.execute(MIGRATIONS[f"migration_{version}"])
    return True


def read_version(cur: Any) -> int | None:
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
            "metadata": json.dumps(stored_metadata(m)),
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
    widening: Widening | None = None,
) -> builtins.list[ClaimedMessage]:
    buckets: dict[str, Bucket] = {}
    if limits:  # one limited claim at a time, cluster-wide: no token is spent twice
        cur.execute(Q["lock_buckets"])
        buckets = _buckets(cur)
    skip_mailers = sorted({*exhausted(limits, buckets, now), *exclude_mailers})
    skip_domains = sorted(exclude_domains)
    params = {
        "skip_mailers": skip_mailers,
        "skip_domains": skip_domains,
        "now": now,
        "limit": limit,
        "window": CLAIM_WINDOW * limit,
    }
    # Every state and priority in one query, read in the order pick_fairly asks for them.
    excluding = skip_mailers or skip_domains
    cur.execute(Q["candidates_excluding" if excluding else "candidates"], params)
    rows = cur.fetchall()
    leaving_out = excluded(skip_mailers, skip_domains)
    if excluding and len(rows) < limit and widening and widening.allowed(leaving_out):

        def whole_queue() -> builtins.list[Any]:  # the rows the window found again, and more
            cur.execute(Q["candidates"], params)
            return builtins.list(cur.fetchall())

        rows = widening.look(whole_queue, enough=limit, leaving_out=leaving_out)
    found: dict[tuple[str, int], builtins.list[tuple[int, str]]] = {}
    for id_, mailer, state_, priority_ in rows:
        found.setdefault((str(state_), int(priority_)), []).append((int(id_), str(mailer)))

    def candidates(state: State, priority: Priority, count: int) -> builtins.list[tuple[int, str]]:
        return found.get((str(state), int(priority)), [])[:count]

    ids, changed = apply_limits(pick_fairly(candidates, limit), limits, buckets, now)
    for name, bucket in changed.items():
        cur.execute(Q["save_bucket"], {"name": name, **bucket_params(bucket)})
    if not ids:
        return []
    params = {"ids": ids, "worker": worker, "until": now + lease, "now": now}
    _execute_binary(cur, Q["claim"], params)
    rows = {int(row[0]): row for row in cur.fetchall()}
    return [claimed(rows[i], where) for i in ids if i in rows]


def _execute_binary(cur: Any, query: str, params: Mapping[str, Any]) -> None:
    """Results in PostgreSQL's binary format where the cursor can (psycopg's): message bodies
    then come as they are stored, not hex-escaped by the server and decoded by the client
    (half the bytes, and most of a claim's cost on both sides)."""
    kind = type(cur)
    binary = _TAKES_BINARY.get(kind)
    if binary is None:
        try:
            binary = "binary" in inspect.signature(kind.execute).parameters
        except (AttributeError, TypeError, ValueError):
            binary = False
        _TAKES_BINARY[kind] = binary
    if binary:
        cur.execute(query, params, binary=True)
    else:
        cur.execute(query, params)


_TAKES_BINARY: dict[type, bool] = {}


def record_outcomes(
    cur: Any, outcomes: Sequence[Outcome], worker: str, now: float, keep_body: bool
) -> builtins.list[bool]:
    """Record outcomes (those of attempts this worker still holds the lease of), with their
    events, and drop sent bodies unless ``keep_body``: one statement. Which were recorded."""
    if not outcomes:
        return []
    rows = [
        {
            "id": o.id,
            "attempt": o.attempt,
            "state": str(o.state),
            "pending": o.recipients,
            "due_at": o.due_at,
            "delivered": o.delivered,
            "summary": o.summary[:1000],
            "reason": o.reason,
            "events": [
                {
                    "kind": e.kind,
                    "recipient": e.recipient,
                    "code": e.code,
                    "enhanced": e.enhanced,
                    "text": e.text,
                    "relay_id": e.relay_id,
                }
                for e in events_for(o, now)
            ],
        }
        for o in outcomes
    ]
    params = {
        "outcomes": json.dumps(rows),
        "ids": [o.id for o in outcomes],
        "worker": worker,
        "now": now,
        "keep_body": keep_body,
    }
    cur.execute(Q["record"], params)
    recorded = {int(row[0]) for row in cur.fetchall()}
    return [o.id in recorded for o in outcomes]


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
