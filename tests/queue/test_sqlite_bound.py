"""``enqueue(..., connection=sqlite3_connection)``: a sqlite:/// queue stored in the caller's own
transaction on the queue's file (mailout.django's "django" queue uses the same path)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import mailout
from mailout.exceptions import ImproperlyConfigured, InvalidAddressError, StorageError
from mailout.queue import enqueue
from mailout.queue.storage.sqlite import SQLiteStorage


def message(n: int, to: str = "ana@example.com") -> mailout.EmailMessage:
    return mailout.EmailMessage(f"Receipt {n}", "Body\n", "shop@example.com", [to])


def subjects(path: Path) -> list[str]:
    with SQLiteStorage(path) as store:  # a connection of its own: only committed rows
        return sorted(m.subject for m in store.list(limit=100))


@pytest.fixture
def queue_file(tmp_path: Path) -> Path:
    path = tmp_path / "queue.db"
    SQLiteStorage(path).close()  # created, in WAL mode
    return path


def test_stored_if_and_only_if_the_caller_commits(queue_file: Path) -> None:
    url = f"sqlite:///{queue_file}"
    conn = sqlite3.connect(queue_file, isolation_level=None)
    conn.execute("BEGIN")
    ids = enqueue([message(1), message(2)], url=url, connection=conn)
    assert ids == [1, 2]
    assert subjects(queue_file) == []  # not before the commit
    conn.execute("COMMIT")
    assert subjects(queue_file) == ["Receipt 1", "Receipt 2"]

    conn.execute("BEGIN")
    enqueue([message(3)], url=url, connection=conn)
    conn.execute("ROLLBACK")
    assert subjects(queue_file) == ["Receipt 1", "Receipt 2"]
    conn.close()


def test_a_bad_batch_stores_nothing_and_the_transaction_goes_on(queue_file: Path) -> None:
    url = f"sqlite:///{queue_file}"
    conn = sqlite3.connect(queue_file, isolation_level=None)
    conn.execute("BEGIN")
    with pytest.raises(InvalidAddressError):
        enqueue([message(1), message(2, to="not an address")], url=url, connection=conn)
    enqueue([message(3)], url=url, connection=conn)
    conn.execute("COMMIT")
    assert subjects(queue_file) == ["Receipt 3"]
    # Autocommit: the batch is a transaction of its own.
    enqueue([message(4)], url=url, connection=conn)
    assert subjects(queue_file) == ["Receipt 3", "Receipt 4"]
    conn.close()


def test_the_storage_binds_too(queue_file: Path) -> None:
    conn = sqlite3.connect(queue_file, isolation_level=None)
    with SQLiteStorage(queue_file) as store:
        conn.execute("BEGIN")
        enqueue([message(1)], storage=store, connection=conn)
        conn.execute("COMMIT")
    assert subjects(queue_file) == ["Receipt 1"]
    conn.close()


def test_a_connection_to_another_file_is_refused(queue_file: Path, tmp_path: Path) -> None:
    other = sqlite3.connect(tmp_path / "other.db")
    with pytest.raises(ImproperlyConfigured, match="not on the queue's file"):
        enqueue([message(1)], url=f"sqlite:///{queue_file}", connection=other)
    with pytest.raises(ImproperlyConfigured, match=r"expected a sqlite3\.Connection"):
        enqueue([message(1)], url=f"sqlite:///{queue_file}", connection=object())
    other.close()


def test_a_file_without_the_queues_tables(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    conn = sqlite3.connect(path)
    with pytest.raises(StorageError, match="no queue tables"):
        enqueue([message(1)], url=f"sqlite:///{path}", connection=conn)
    conn.close()
