"""PostgreSQL for the queue's tests: a schema of its own per test, created and dropped.

The server is the machine's (127.0.0.1:5432, trust authentication, database ``test``; other
jobs use it at the same time): a test never restarts it, and kills only connections it made
(their ``application_name`` is unique to the test). ``MAILOUT_TEST_POSTGRES`` names another
server. Without psycopg or a server answering, the test is skipped with the reason (under
CI, tests/conftest.py makes that a failure, and .ci/run checks the server first).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

SERVER = os.environ.get("MAILOUT_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def _driver() -> Any:
    try:
        import psycopg
    except ImportError:
        pytest.skip('needs psycopg: pip install "mailout[postgres]"')
    return psycopg


def admin() -> Any:
    """A connection of the test's own (autocommit) to create, inspect and drop schemas."""
    psycopg = _driver()
    try:
        return psycopg.connect(SERVER, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL does not answer at {SERVER}: {str(exc).strip()[:200]}")


@contextlib.contextmanager
def pg_queue(*, migrate: bool = True, **params: str) -> Iterator[str]:
    """The URL of a new queue in a schema of its own (dropped afterwards), migrated."""
    schema = f"mailout_test_{uuid.uuid4().hex[:12]}"
    query = "&".join(f"{k}={v}" for k, v in {"schema": schema, **params}.items())
    url = f"{SERVER}?{query}"
    with admin() as conn:
        try:
            if migrate:
                from mailout.queue.storage.postgres import PostgresStorage

                storage = PostgresStorage(url, check_schema=False)
                storage.migrate()
                storage.close()
            yield url
        finally:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def schema_of(url: str) -> str:
    return url.split("schema=")[1].split("&")[0]


def terminate(application_name: str) -> int:
    """Kill every connection named ``application_name`` (this test's own): as if PostgreSQL
    restarted under them."""
    with admin() as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            [application_name],
        ).fetchall()
    return sum(1 for (done,) in rows if done)
