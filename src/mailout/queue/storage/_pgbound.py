"""Enqueue inside the caller's own psycopg connection and transaction.

The messages are inserted on the caller's connection, in a savepoint of the caller's
transaction (or, on a connection in autocommit mode, a transaction of their own), and the
``NOTIFY`` that wakes the workers goes with them: both take effect when the caller commits,
and vanish if the caller rolls back. The queue's schema is put first on the search path for
these statements only, and the caller's search path is restored afterwards.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mailout.exceptions import ImproperlyConfigured, StorageError
from mailout.queue.models import NewMessage
from mailout.queue.storage._pgconn import PgURL, import_driver

__all__ = ["BoundStorage"]

_IDLE = 0  # psycopg.pq.TransactionStatus.IDLE: no transaction open on the connection


class BoundStorage:
    """``enqueue`` on the caller's connection (``Storage.bound_to(connection)``)."""

    def __init__(
        self,
        url: PgURL,
        connection: object,
        *,
        search_path: bool = True,
        migrate: str = "run `mailout queue migrate` (with the same EMAIL_QUEUE_URL)",
    ) -> None:
        psycopg, _ = import_driver()
        if not isinstance(connection, psycopg.Connection):
            raise ImproperlyConfigured(
                "connection: expected a psycopg 3 Connection (psycopg.connect(...)), got "
                f"{type(connection).__name__}"
            )
        self.psycopg = psycopg
        self.url = url
        self.name = url.name
        self.connection: Any = connection
        self.channel = f"mailout_queue.{url.schema}"[:63]
        # False: the connection's search path finds the queue already (Django's connection,
        # whose current schema the queue lives in): two statements fewer per batch.
        self.search_path = search_path
        self.migrate = migrate  # what to do when the tables are missing

    @classmethod
    def from_url(
        cls, url: str, connection: object, *, setting: str = "EMAIL_QUEUE_URL"
    ) -> BoundStorage:
        return cls(PgURL.parse(url, setting=setting), connection)

    def enqueue(self, messages: Iterable[NewMessage], *, now: float) -> list[int]:
        from mailout.queue.storage._pgsql import Q, insert_messages

        conn = self.connection
        sql = self.psycopg.sql
        schema = sql.Identifier(self.url.schema).as_string(conn)
        try:
            with conn.cursor() as cur:
                # In a transaction of the caller's (one is begun if none is open, unless the
                # connection commits each statement): a savepoint, so that a batch stores all
                # or nothing whatever the caller does next.
                previous = None
                if self.search_path:
                    cur.execute("SELECT current_setting('search_path')")
                    previous = cur.fetchone()[0]
                elif not conn.autocommit and conn.info.transaction_status == _IDLE:
                    # The caller's transaction has not begun (Django's atomic() begins it
                    # with its first statement): begin it, so that the block below is a
                    # savepoint of it, not a transaction of its own that would commit.
                    cur.execute("SELECT 1")
                with conn.transaction():
                    if previous is not None:
                        cur.execute(
                            "SELECT set_config('search_path', %s, true)", [f"{schema}, {previous}"]
                        )
                    ids = insert_messages(cur, messages, now)
                    if self.url.notify and ids:
                        cur.execute(Q["notify"], {"channel": self.channel})
                    if previous is not None:
                        cur.execute("SELECT set_config('search_path', %s, true)", [previous])
        except self.psycopg.errors.UndefinedTable as exc:
            raise StorageError(
                f"queue database {self.name}: no queue schema in {self.url.schema!r}: "
                f"{self.migrate}"
            ) from exc
        except self.psycopg.Error as exc:
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StorageError(
                f"queue database {self.name}: storing messages on your connection failed: {detail}"
            ) from exc
        return ids
