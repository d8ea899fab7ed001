"""Fixtures of the queue's tests: every storage, a clock the test moves, message builders."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mailout.queue.models import NewMessage, Priority
from mailout.queue.storage import Storage, close_shared
from mailout.queue.storage.memory import MemoryStorage
from mailout.queue.storage.sqlite import SQLiteStorage

T0 = 1_800_000_000.0  # a fixed "now" for tests on the injected clock


@contextlib.contextmanager
def _memory(tmp_path: Path) -> Iterator[Storage]:
    with MemoryStorage("memory:test") as store:
        yield store


@contextlib.contextmanager
def _sqlite(tmp_path: Path) -> Iterator[Storage]:
    with SQLiteStorage(tmp_path / "queue.db") as store:
        yield store


@contextlib.contextmanager
def _postgres(tmp_path: Path) -> Iterator[Storage]:
    from mailout.queue.storage.postgres import PostgresStorage
    from tests.queue.pg import pg_queue

    with pg_queue() as url:
        store = PostgresStorage(url)
        try:
            yield store
        finally:
            store.close()


#: The storages the contract suite runs against.
STORAGES: dict[str, Callable[[Path], contextlib.AbstractContextManager[Storage]]] = {
    "memory": _memory,
    "sqlite": _sqlite,
    "postgres": _postgres,
}


@pytest.fixture(params=sorted(STORAGES))
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    with STORAGES[request.param](tmp_path) as store:
        yield store


@pytest.fixture(autouse=True)
def _fresh_queues() -> Iterator[None]:
    MemoryStorage.forget_all()
    yield
    close_shared()
    MemoryStorage.forget_all()


@dataclass
class Clock:
    """A clock the test moves by hand; ``sleep`` moves it too, so nothing waits for real."""

    now: float = T0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


def new(
    n: int = 0,
    *,
    to: tuple[str, ...] | None = None,
    mailer: str = "default",
    priority: Priority = Priority.NORMAL,
    not_before: float | None = None,
    key: str | None = None,
    metadata: dict[str, object] | None = None,
) -> NewMessage:
    """A small stored message number ``n``."""
    recipients = to or (f"rcpt{n}@example.com",)
    data = (
        f"From: sender@example.com\r\nTo: {recipients[0]}\r\nSubject: message {n}\r\n"
        f"Message-ID: <{n}@test>\r\n\r\nbody {n}\r\n"
    ).encode()
    return NewMessage(
        sender="sender@example.com",
        recipients=recipients,
        data=data,
        message_id=f"<{n}@test>",
        subject=f"message {n}",
        mailer=mailer,
        priority=priority,
        not_before=not_before,
        key=key,
        metadata=metadata or {},
    )
