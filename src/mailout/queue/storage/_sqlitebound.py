"""Enqueue on a sqlite3 connection of the caller's, inside the caller's transaction.

``SQLiteStorage.bound_to(connection)`` (and ``enqueue(..., connection=...)`` with a
``sqlite:///`` queue; mailout.django's ``"django"`` queue with Django's own connection): the
rows are inserted in a savepoint, so a batch stores all or nothing, and they commit or roll
back with the caller's transaction. On a connection with no transaction open (autocommit, as
Django's is outside ``atomic()``), the savepoint is a transaction of its own, committed when
released. Durability is then the connection's: its ``synchronous`` setting (SQLite's default,
FULL, fsyncs each commit; mailout's own connections set it too).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable
from typing import Final
from urllib.parse import unquote, urlsplit

from mailout.exceptions import ImproperlyConfigured, StorageError
from mailout.queue.models import NewMessage
from mailout.queue.sql import load
from mailout.queue.storage._rows import MessageRows

__all__ = ["BoundSQLite", "insert_messages", "path_of_url"]

Q: Final = load("sqlite")
_SAVEPOINT: Final = "mailout_enqueue"


def insert_messages(
    db: sqlite3.Connection, messages: Iterable[NewMessage], now: float
) -> list[int]:
    """Insert each message and its body with ``db``, in its current transaction, one at a time:
    a caller's transaction may have read before (it holds no write lock until its first
    write), so ids come from each insert (``lastrowid``), never from the table's largest id
    (as SQLiteStorage's own ``BEGIN IMMEDIATE`` batches may). A message whose key is already
    stored is not stored again (its existing id is returned)."""
    rows = MessageRows(now)
    ids: list[int] = []
    for m in messages:
        cursor = db.execute(Q["insert_message"], rows.message(m))
        if cursor.rowcount == 1:
            ids.append(int(cursor.lastrowid or 0))
            db.execute(Q["insert_body"], (ids[-1], m.data))
        else:  # the key was stored before: a no-op that counts as stored
            ids.append(int(db.execute(Q["id_for_key"], {"key": m.key}).fetchone()[0]))
    return ids


def path_of_url(url: str, *, setting: str = "EMAIL_QUEUE_URL") -> str:
    """The file of ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db``."""
    parts = urlsplit(url)
    path = unquote(parts.path)
    if parts.netloc or not path.startswith("/") or len(path) < 2:
        raise ImproperlyConfigured(
            f"{setting}: {url!r} is not sqlite:///relative/path.db or sqlite:////absolute/path.db"
        )
    return path[1:]


class BoundSQLite:
    """``enqueue`` on the caller's ``sqlite3.Connection`` (see the module docstring). ``name``
    identifies the queue in errors; ``migrate`` says how to create its tables."""

    def __init__(self, connection: object, name: str, *, migrate: str = "") -> None:
        if not isinstance(connection, sqlite3.Connection):
            raise ImproperlyConfigured(
                "connection: expected a sqlite3.Connection for a sqlite:/// queue, got "
                f"{type(connection).__name__}"
            )
        self.connection = connection
        self.name = name
        self.migrate = migrate

    @classmethod
    def for_file(cls, connection: object, path: str) -> BoundSQLite:
        """Bound to ``connection``, which must be open on the queue's file ``path``."""
        bound = cls(connection, path)
        try:
            rows = bound.connection.execute("PRAGMA database_list").fetchall()
        except sqlite3.Error as exc:
            raise StorageError(f"queue database {path}: cannot use your connection: {exc}") from exc
        main = next((str(row[2]) for row in rows if row[1] == "main"), "")
        if not main or os.path.realpath(main) != os.path.realpath(path):
            raise ImproperlyConfigured(
                f"connection: your sqlite3 connection is open on {main or 'a memory database'!r}, "
                f"not on the queue's file {path}"
            )
        return bound

    def enqueue(self, messages: Iterable[NewMessage], *, now: float) -> list[int]:
        db = self.connection
        try:
            db.execute(f"SAVEPOINT {_SAVEPOINT}")
            try:
                ids = insert_messages(db, messages, now)
            except BaseException:
                db.execute(f"ROLLBACK TO {_SAVEPOINT}")
                db.execute(f"RELEASE {_SAVEPOINT}")
                raise
            db.execute(f"RELEASE {_SAVEPOINT}")
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                hint = f": {self.migrate}" if self.migrate else ""
                raise StorageError(f"queue database {self.name}: no queue tables{hint}") from exc
            raise StorageError(
                f"queue database {self.name}: storing messages on your connection failed: {exc}"
            ) from exc
        except sqlite3.Error as exc:
            raise StorageError(
                f"queue database {self.name}: storing messages on your connection failed: {exc}"
            ) from exc
        return ids
