"""mailout's queue tables in a Django project's database, created by ``manage.py migrate``.

The migration ``mailout/0001_queue`` runs these on Django's own connection, in a transaction,
for the database being migrated (so routers decide which databases get them); on SQLite it
switches the file to WAL mode first (see ``use_wal``). The
SQL is mailout's own (``mailout/queue/sql/<engine>/schema.sql``), the same the queue's storages
create, so ``"django"`` queues and ``sqlite:///``/``postgresql://`` queues are one schema and
table names stay mailout's (``mailout_queue_*``). On PostgreSQL the tables go to the first
schema of the connection's search path (``current_schema()``, usually ``public``), under the
advisory lock ``mailout queue migrate`` takes too. Other databases get nothing: their project
keeps its queue elsewhere (``EMAIL_QUEUE_URL``).
"""

from __future__ import annotations

import re
import sqlite3
from typing import Any, Final

from mailout.exceptions import ImproperlyConfigured
from mailout.queue.sql import load

__all__ = ["TABLES", "create_tables", "drop_tables", "queue_schema", "use_wal"]

_TABLE: Final = re.compile(r"CREATE TABLE IF NOT EXISTS (\w+)")
#: The queue's tables per Django vendor, in the order they are created.
TABLES: Final = {
    "sqlite": tuple(_TABLE.findall(load("sqlite", "schema.sql")["create"])),
    "postgresql": tuple(
        name for block in load("postgres", "schema.sql").values() for name in _TABLE.findall(block)
    ),
}


def _statements(script: str) -> list[str]:
    """A script cut into statements where SQLite itself says one ends (comments and string
    literals may hold semicolons), so that each runs on Django's cursor, in its transaction
    (``executescript`` would commit the migration's transaction first)."""
    statements: list[str] = []
    current: list[str] = []
    for line in script.splitlines(keepends=True):
        current.append(line)
        text = "".join(current)
        if sqlite3.complete_statement(text):
            statements.append(text.strip())
            current = []
    rest = "".join(current).strip()
    if rest and not all(ln.strip().startswith("--") for ln in rest.splitlines() if ln.strip()):
        statements.append(rest)
    return statements


def queue_schema(connection: Any) -> str:
    """The PostgreSQL schema a Django connection's unqualified names resolve to."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_schema()")
        row = cursor.fetchone()
    if row is None or row[0] is None:
        raise ImproperlyConfigured(
            f"DATABASES[{connection.alias!r}]: the connection's search_path names no existing "
            "schema; create it (or fix OPTIONS' search_path) before migrating"
        )
    return str(row[0])


def use_wal(apps: Any, schema_editor: Any) -> None:
    """SQLite: WAL mode, as mailout's own queue files use (kept by the file from now on), so
    that a worker reads and claims while the site writes, and opening the queue from a worker
    never needs the lock a site's transaction holds. Outside any transaction (SQLite refuses
    the switch inside one); an in-memory database stays as it is."""
    connection = schema_editor.connection
    if connection.vendor != "sqlite" or connection.is_in_memory_db():
        return
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode = WAL")


def create_tables(apps: Any, schema_editor: Any) -> None:
    """Forwards: the queue's schema at the version this mailout knows."""
    connection = schema_editor.connection
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            for statement in _statements(load("sqlite", "schema.sql")["create"]):
                cursor.execute(statement)
    elif connection.vendor == "postgresql":
        from mailout.queue.storage.postgres import SCHEMA_VERSION, migrate_step

        schema = queue_schema(connection)
        with connection.cursor() as cursor:
            for version in range(1, SCHEMA_VERSION + 1):
                migrate_step(cursor, version, lock_key=schema)


def drop_tables(apps: Any, schema_editor: Any) -> None:
    """Backwards: the queue's tables and everything in them."""
    connection = schema_editor.connection
    tables = TABLES.get(connection.vendor, ())
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        for table in reversed(tables):
            cursor.execute(f"DROP TABLE IF EXISTS {quote(table)}")
