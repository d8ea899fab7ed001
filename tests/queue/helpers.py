"""Running a worker in a test: on the injected clock, with an in-memory record of its events."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import mailout
from mailout.queue import Hooks, Queue, RetryPolicy, Worker, WorkerOptions
from mailout.queue.models import Report
from mailout.queue.report import Reporter
from mailout.queue.storage import Storage
from tests.queue.conftest import Clock
from tests.servers.faulty import FaultyServer


class Recorder(Reporter):
    """A reporter that keeps what it is told, for assertions."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int, dict[str, Any]]] = []
        self.reports: list[Report] = []

    def event(self, name: str, *, level: int = logging.INFO, **fields: Any) -> None:
        self.events.append((name, level, fields))

    def delivered(self, reports: Sequence[Report]) -> None:
        self.reports.extend(reports)

    def named(self, name: str) -> list[dict[str, Any]]:
        return [fields for event, _, fields in self.events if event == name]


def make_worker(
    storage: Storage,
    clock: Clock,
    *,
    hooks: Hooks | None = None,
    policy: RetryPolicy | None = None,
    reporter: Reporter | None = None,
    **options: Any,
) -> Worker:
    settings = {"batch": 50, "concurrency": 2, "lease": 30.0, **options}
    return Worker(
        storage,
        options=WorkerOptions(**settings),
        policy=policy or RetryPolicy(),
        hooks=hooks or Hooks(),
        reporter=reporter or Recorder(),
        clock=clock,
        draw=lambda: 0.5,  # no jitter: the schedule is exact
        sleep=clock.sleep,
    )


def memory_queue_with_mailers(**mailers: str) -> None:
    """Configure a queue in memory and ``MAILERS`` aliases, each to a backend's dotted path."""
    mailout.configure(
        {
            "EMAIL_QUEUE_URL": "memory:",
            "MAILERS": {name: {"BACKEND": path} for name, path in mailers.items()},
        }
    )


def slow_and_quick_mailers(a_messages: int, b_messages: int) -> Queue:
    """A queue in memory with mail of mailer a (SlowBackend: 0.2 s a message) to a.example
    and of mailer b (locmem) to b.example."""
    from tests.queue import backends

    backends.SlowBackend.reset()
    memory_queue_with_mailers(
        a="tests.queue.backends.SlowBackend", b="mailout.backends.locmem.EmailBackend"
    )
    queue = Queue()
    for mailer, count in (("a", a_messages), ("b", b_messages)):
        queue.enqueue(
            [
                mailout.EmailMessage(
                    f"{mailer}{n}", "Body", "s@example.com", [f"u@{mailer}.example"]
                )
                for n in range(count)
            ],
            mailer=mailer,
        )
    return queue


def live_worker(storage: Storage, **options: Any) -> Worker:
    """A worker on the real clock with ``options``, as ``running`` runs it."""
    return Worker(
        storage,
        options=WorkerOptions(**options),
        hooks=Hooks(),
        policy=RetryPolicy(),
        reporter=Recorder(),
    )


@contextlib.contextmanager
def running(worker: Worker) -> Iterator[Worker]:
    """``worker.run()`` in a thread until the block ends; then it must stop."""
    thread = threading.Thread(target=worker.run, kwargs={"handle_signals": False})
    thread.start()
    try:
        yield worker
    finally:
        worker.stop()
        thread.join(30)
    assert not thread.is_alive()


def drain(storage: Storage, clock: Clock, **kwargs: Any) -> Worker:
    """Deliver what is due now, as ``mailout queue worker --once`` does; check it exits 0."""
    worker = make_worker(storage, clock, **kwargs)
    assert worker.run(once=True, handle_signals=False) == 0
    return worker


def smtp_to(server: FaultyServer, **settings: Any) -> None:
    """Point the default mailer (the SMTP backend from EMAIL_*) at ``server``."""
    mailout.configure(
        {"EMAIL_HOST": server.host, "EMAIL_PORT": server.port, "EMAIL_TIMEOUT": 2.0, **settings}
    )


def states(queue: Queue) -> dict[str, int]:
    return {str(s): n for s, n in queue.status().counts.items() if n}


class FixedPortServer(FaultyServer):
    """A FaultyServer on a port chosen beforehand: the relay that was down comes back there."""

    def __init__(self, port: int, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._fixed = port

    def start(self) -> FixedPortServer:
        from tests.servers._loop import LoopThread

        self._thread = LoopThread("FixedPortServer")
        self._server = self._thread.run(
            asyncio.start_server(self._serve, self.host, self._fixed, reuse_address=True)
        )
        self.port = self._fixed
        return self
