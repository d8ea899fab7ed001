"""Storing a batch of new messages in SQLite, a run of them per ``executemany``.

Most messages have no idempotency key: a run of them is inserted with two ``executemany``
calls (messages, then bodies) instead of two statements a message. A message with a key is
inserted on its own, since its insert may be a no-op (the key is already queued) whose id
must be looked up.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from typing import Final

from mailout.exceptions import StorageError
from mailout.queue.models import NewMessage
from mailout.queue.storage._rows import MessageRows

__all__ = ["store"]

# Messages inserted by one executemany at most (a batch's rows are built a run at a time).
RUN: Final = 1000
_MAX_ROWID: Final = 2**63 - 1


def store(
    db: sqlite3.Connection,
    queries: Mapping[str, str],
    messages: Iterable[NewMessage],
    *,
    now: float,
    where: str,
) -> list[int]:
    """Insert ``messages`` inside the caller's write transaction; their ids, in order."""
    rows = MessageRows(now)
    ids: list[int] = []
    run: list[NewMessage] = []  # messages without a key, inserted together
    for m in messages:
        if m.key is None:
            run.append(m)
            if len(run) == RUN:
                ids += _insert_run(db, queries, run, rows, where)
                run = []
            continue
        if run:
            ids += _insert_run(db, queries, run, rows, where)
            run = []
        ids.append(_insert_one(db, queries, m, rows))
    if run:
        ids += _insert_run(db, queries, run, rows, where)
    return ids


def _insert_run(
    db: sqlite3.Connection,
    queries: Mapping[str, str],
    run: list[NewMessage],
    rows: MessageRows,
    where: str,
) -> list[int]:
    """Messages without an idempotency key, in two ``executemany`` calls (one per table).

    Their ids are known without asking for each: inside ``BEGIN IMMEDIATE`` no one else
    writes, and SQLite gives a row inserted without a ROWID the largest one in the table plus
    one (the table is not AUTOINCREMENT), so n rows get the n ids after the largest. That is
    checked (the rows inserted and the new largest id) before the bodies are stored; a
    mismatch raises, which rolls the whole batch back.
    """
    first = int(db.execute(queries["max_id"]).fetchone()[0] or 0) + 1
    if first + len(run) >= _MAX_ROWID:  # SQLite would then pick ids at random
        return [_insert_one(db, queries, m, rows) for m in run]
    before = db.total_changes
    db.executemany(queries["insert_message"], [rows.message(m) for m in run])
    last = int(db.execute(queries["max_id"]).fetchone()[0] or 0)
    if db.total_changes - before != len(run) or last != first + len(run) - 1:
        raise StorageError(
            f"queue database {where}: storing messages failed: "
            f"{len(run)} rows did not get the ids {first}..{first + len(run) - 1}"
        )
    ids = list(range(first, last + 1))
    db.executemany(queries["insert_body"], zip(ids, [m.data for m in run], strict=True))
    return ids


def _insert_one(
    db: sqlite3.Connection, queries: Mapping[str, str], m: NewMessage, rows: MessageRows
) -> int:
    cursor = db.execute(queries["insert_message"], rows.message(m))
    if cursor.rowcount != 1:  # the key was stored before: a no-op that counts as stored
        return int(db.execute(queries["id_for_key"], {"key": m.key}).fetchone()[0])
    id_ = int(cursor.lastrowid or 0)
    db.execute(queries["insert_body"], (id_, m.data))
    return id_
