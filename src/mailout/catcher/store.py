"""The catcher's message store: raw messages in SQLite, in memory or in a file, filed by recipient.

One class for both storages (``path=":memory:"`` or a file name), so the same code and the same
test suite cover them. Every message is filed under each of its envelope recipients (so a Bcc
recipient's inbox has it too); addresses are compared exactly in the local part and
case-insensitively in the domain (RFC 5321 §2.4: only the domain is case-insensitive). The raw
bytes are kept exactly as given; the decoded summary and search text are computed once, on add.

It is safe to use from several threads (one connection behind a lock). Subscribers are called
after each change, synchronously, in the thread that made it, outside the lock.
"""

from __future__ import annotations

import builtins
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from mailout.catcher import parse

__all__ = ["MessageStore", "StoreEvent", "Summary", "address_key"]


@dataclass(frozen=True, slots=True)
class Summary:
    id: int
    received_at: float  # epoch seconds
    mail_from: str  # envelope sender ("" for the null sender <>)
    recipients: tuple[str, ...]  # envelope recipients, as given
    from_header: str  # decoded; "" when absent
    to_header: str
    subject: str
    size: int  # bytes stored
    attachments: int  # attachment parts, not counting bodies or inline (cid:) images


@dataclass(frozen=True, slots=True)
class StoreEvent:
    kind: Literal["added", "deleted", "cleared"]
    id: int | None  # None for "cleared"


_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused, even after a delete
    received_at REAL NOT NULL,
    mail_from TEXT NOT NULL,
    recipients TEXT NOT NULL,  -- JSON list, envelope order
    from_header TEXT NOT NULL,
    to_header TEXT NOT NULL,
    subject TEXT NOT NULL,
    size INTEGER NOT NULL,
    attachments INTEGER NOT NULL,
    search_text TEXT NOT NULL,  -- casefolded
    raw BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS recipients (
    message_id INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    address TEXT NOT NULL,  -- address_key(): local part as given, domain lowercased
    PRIMARY KEY (address, message_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS recipients_by_message ON recipients (message_id);
"""

_SUMMARY_COLUMNS = (
    "m.id, m.received_at, m.mail_from, m.recipients, m.from_header, m.to_header, m.subject, "
    "m.size, m.attachments"
)
_INSERT = (
    "INSERT INTO messages (received_at, mail_from, recipients, from_header, to_header, subject, "
    "size, attachments, search_text, raw) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_FILTER_TO = "EXISTS (SELECT 1 FROM recipients r WHERE r.message_id = m.id AND r.address = ?)"
_FILTER_TERM = "instr(m.search_text, ?) > 0"


def address_key(address: str) -> str:
    """How inboxes are keyed: the local part exactly, the domain lowercased."""
    address = address.strip()
    if address.startswith("<") and address.endswith(">"):
        address = address[1:-1]
    local, at, domain = address.rpartition("@")
    if not at:
        return address
    return f"{local}@{domain.lower()}"


class MessageStore:
    """Caught messages, newest first, in SQLite (``":memory:"`` by default, or a file)."""

    def __init__(
        self,
        path: str = ":memory:",
        *,
        max_messages: int | None = None,
        max_age: float | None = None,
    ) -> None:
        if max_messages is not None and max_messages < 1:
            raise ValueError(f"max_messages must be at least 1, not {max_messages}")
        if max_age is not None and max_age <= 0:
            raise ValueError(f"max_age must be positive, not {max_age}")
        self.path = path
        self.max_messages = max_messages
        self.max_age = max_age
        self._lock = threading.RLock()
        self._subscribers: builtins.list[Callable[[StoreEvent], None]] = []
        # isolation_level=None: we open transactions ourselves, so each add is committed (and
        # on disk, for a file) before anyone is told it was stored.
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA foreign_keys = ON")
        if path != ":memory:":
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")  # durable across a process crash
        self._db.executescript(_SCHEMA)
        self._closed = False

    # -- changes -------------------------------------------------------------------------------

    def add(
        self,
        mail_from: str,
        recipients: Sequence[str],
        raw: bytes,
        *,
        parsed: parse.Parsed | None = None,
    ) -> Summary:
        """Store one message; prune per the limits; return its summary.

        ``parsed`` is ``parse.read(raw)`` if the caller has it already (it is read otherwise).
        """
        if isinstance(recipients, str):
            raise TypeError("recipients must be a sequence of addresses, not a str")
        raw = bytes(raw)
        info = (parsed if parsed is not None else parse.read(raw)).summary()
        received_at = time.time()
        summary_fields = (
            mail_from,
            tuple(recipients),
            str(info["from_header"]),
            str(info["to_header"]),
            str(info["subject"]),
            len(raw),
            int(info["attachments"]),  # type: ignore[call-overload]
        )
        search_text = "\n".join([mail_from, *recipients, str(info["search_text"])]).casefold()
        keys = sorted({address_key(r) for r in recipients})
        with self._lock:
            self._check_open()
            with self._transaction():
                cursor = self._db.execute(
                    _INSERT,
                    (
                        received_at,
                        mail_from,
                        json.dumps(list(recipients)),
                        *summary_fields[2:],
                        search_text,
                        raw,
                    ),
                )
                message_id = int(cursor.lastrowid or 0)
                self._db.executemany(
                    "INSERT INTO recipients (message_id, address) VALUES (?, ?)",
                    [(message_id, key) for key in keys],
                )
                pruned = self._prune(received_at)
        summary = Summary(message_id, received_at, *summary_fields)
        self._notify(StoreEvent("added", message_id))
        for old in pruned:
            self._notify(StoreEvent("deleted", old))
        return summary

    def delete(self, message_id: int) -> bool:
        with self._lock:
            self._check_open()
            with self._transaction():
                deleted = self._db.execute(
                    "DELETE FROM messages WHERE id = ?", (message_id,)
                ).rowcount
        if deleted:
            self._notify(StoreEvent("deleted", message_id))
        return bool(deleted)

    def clear(self) -> int:
        """Delete every message; return how many there were."""
        with self._lock:
            self._check_open()
            with self._transaction():
                self._db.execute("DELETE FROM recipients")
                count = self._db.execute("DELETE FROM messages").rowcount
        self._notify(StoreEvent("cleared", None))
        return int(count)

    def prune(self) -> builtins.list[int]:
        """Apply the age and count limits now (``add`` does this too); return the ids deleted."""
        with self._lock:
            self._check_open()
            with self._transaction():
                pruned = self._prune(time.time())
        for old in pruned:
            self._notify(StoreEvent("deleted", old))
        return pruned

    # -- queries -------------------------------------------------------------------------------

    def list(
        self, *, to: str | None = None, q: str | None = None, limit: int = 50, offset: int = 0
    ) -> tuple[int, builtins.list[Summary]]:
        """(total matching, one page of summaries), newest first.

        ``to`` keeps messages with that envelope recipient; ``q`` keeps messages whose subject,
        addresses (envelope and headers) or body text contain every whitespace-separated word
        of it, case-insensitively.
        """
        if limit < 0 or offset < 0:
            raise ValueError("limit and offset must not be negative")
        clauses: builtins.list[str] = []
        params: builtins.list[object] = []
        if to is not None:
            clauses.append(_FILTER_TO)
            params.append(address_key(to))
        for term in (q or "").casefold().split():
            clauses.append(_FILTER_TERM)
            params.append(term)
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        with self._lock:
            self._check_open()
            (total,) = self._db.execute(
                "SELECT count(*) FROM messages m" + where, params
            ).fetchone()
            rows = self._db.execute(
                f"SELECT {_SUMMARY_COLUMNS} FROM messages m{where} "
                "ORDER BY m.id DESC LIMIT ? OFFSET ?",
                [*params, limit, offset],
            ).fetchall()
        return int(total), [_summary(row) for row in rows]

    def get(self, message_id: int) -> Summary | None:
        with self._lock:
            self._check_open()
            row = self._db.execute(
                f"SELECT {_SUMMARY_COLUMNS} FROM messages m WHERE m.id = ?", (message_id,)
            ).fetchone()
        return _summary(row) if row else None

    def raw(self, message_id: int) -> bytes | None:
        """The message exactly as stored."""
        with self._lock:
            self._check_open()
            row = self._db.execute(
                "SELECT raw FROM messages WHERE id = ?", (message_id,)
            ).fetchone()
        return bytes(row[0]) if row else None

    def inboxes(self) -> builtins.list[tuple[str, int]]:
        """(recipient address, number of messages) for every envelope recipient, sorted."""
        with self._lock:
            self._check_open()
            rows = self._db.execute(
                "SELECT address, count(*) FROM recipients GROUP BY address ORDER BY address"
            ).fetchall()
        return [(str(address), int(count)) for address, count in rows]

    def count(self) -> int:
        with self._lock:
            self._check_open()
            (count,) = self._db.execute("SELECT count(*) FROM messages").fetchone()
        return int(count)

    # -- subscribers and life cycle ------------------------------------------------------------

    def subscribe(self, callback: Callable[[StoreEvent], None]) -> Callable[[], None]:
        """Call ``callback`` after every change; return a function that unsubscribes."""
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._db.close()

    def __enter__(self) -> MessageStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<MessageStore {self.path!r}>"

    # -- internals -----------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the message store is closed")

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)

    def _prune(self, now: float) -> builtins.list[int]:
        pruned: builtins.list[int] = []
        if self.max_age is not None:
            rows = self._db.execute(
                "SELECT id FROM messages WHERE received_at < ?", (now - self.max_age,)
            ).fetchall()
            pruned += [int(r[0]) for r in rows]
        if self.max_messages is not None:
            rows = self._db.execute(
                "SELECT id FROM messages ORDER BY id DESC LIMIT -1 OFFSET ?",
                (self.max_messages,),
            ).fetchall()
            pruned += [int(r[0]) for r in rows if int(r[0]) not in pruned]
        self._db.executemany("DELETE FROM messages WHERE id = ?", [(i,) for i in pruned])
        return sorted(pruned)

    def _notify(self, event: StoreEvent) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for callback in subscribers:
            callback(event)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")


def _summary(row: tuple[object, ...]) -> Summary:
    (message_id, received_at, mail_from, recipients, from_h, to_h, subject, size, count) = row
    return Summary(
        id=int(message_id),  # type: ignore[call-overload]
        received_at=float(received_at),  # type: ignore[arg-type]
        mail_from=str(mail_from),
        recipients=tuple(json.loads(str(recipients))),
        from_header=str(from_h),
        to_header=str(to_h),
        subject=str(subject),
        size=int(size),  # type: ignore[call-overload]
        attachments=int(count),  # type: ignore[call-overload]
    )
