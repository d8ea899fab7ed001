"""``mailout queue demo``: enqueue mail while the relay is down, watch a worker retry it.

The demo picks a free port for the mail catcher but does not start it yet; it enqueues a few
messages into a queue in a temporary SQLite file and starts a worker (with a 2-second
backoff instead of Postfix's 5 minutes, so the retry comes quickly). The first attempt finds
nothing listening and defers every message; then the catcher starts, the retry delivers,
and the demo shows the queue's status, one message's history and the web inbox.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TextIO

import mailout
from mailout.queue.api import Queue
from mailout.queue.cli import print_message, print_status
from mailout.queue.hooks import Hooks
from mailout.queue.models import State
from mailout.queue.policy import RetryPolicy
from mailout.queue.report import choose_reporter
from mailout.queue.worker import Worker, WorkerOptions

__all__ = ["run_queue_demo"]


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _messages() -> list[mailout.EmailMessage]:
    from mailout.demo import demo_message

    notes = [
        mailout.EmailMessage(
            f"Your order #{1000 + n} has shipped",
            f"Hello,\n\nyour order #{1000 + n} is on its way.\n",
            "Shop <orders@shop.example>",
            [f"customer{n}@example.com"],
        )
        for n in range(4)
    ]
    return [demo_message(), *notes]


def run_queue_demo(*, wait: bool = True, out: TextIO | None = None) -> int:
    try:
        from mailout.catcher.server import Catcher, web_available
    except ImportError:  # pragma: no cover - the module itself is always there
        raise SystemExit(
            'mailout queue demo needs the server extra: pip install "mailout[server]"'
        ) from None
    write = (out or sys.stdout).write
    port = _free_port()
    folder = tempfile.mkdtemp(prefix="mailout-queue-demo-")
    url = f"sqlite:///{Path(folder) / 'queue.db'}"
    mailout.configure(
        {"EMAIL_HOST": "127.0.0.1", "EMAIL_PORT": port, "EMAIL_TIMEOUT": 5, "EMAIL_QUEUE_URL": url}
    )
    queue = Queue(url)
    ids = [i for i in queue.enqueue(_messages()) if i is not None]
    write(f"Enqueued {len(ids)} messages into {url} (committed before enqueue() returned).\n")
    write(f"The relay at 127.0.0.1:{port} is down for now: the first attempt will be deferred.\n\n")
    worker = Worker(
        queue.storage,
        options=WorkerOptions(batch=50, concurrency=1, lease=10.0, poll_interval=0.2),
        policy=RetryPolicy(min_delay=2.0, max_delay=10.0, lifetime=600.0),
        hooks=Hooks(),
        reporter=choose_reporter(sys.stderr),
    )
    thread = threading.Thread(target=worker.run, kwargs={"handle_signals": False}, daemon=True)
    thread.start()
    catcher = None
    try:
        _until(lambda: queue.status().counts[State.DEFERRED] == len(ids), 30)
        write(f"\nAll {len(ids)} deferred. Starting the mail catcher on port {port}...\n")
        try:
            catcher = Catcher(
                smtp=("127.0.0.1", port), http=("127.0.0.1", 0) if web_available() else None
            )
        except ImportError:
            raise SystemExit(
                'mailout queue demo needs the server extra: pip install "mailout[server]"'
            ) from None
        catcher.start_in_thread()
        _until(lambda: queue.status().counts[State.SENT] == len(ids), 60)
        worker.stop()
        thread.join(30)
        write("\nEvery message was retried and delivered. `mailout queue status`:\n")
        print_status(queue, False, out or sys.stdout)
        write(f"\n`mailout queue show {ids[0]}` (its history: deferred, then sent):\n")
        print_message(queue, ids[0], out or sys.stdout)
        if catcher.http_url:
            write(f"\nRead them in the web inbox: {catcher.http_url}\n")
        write(f"Look at the queue yourself: mailout queue status --url {url}\n")
        if wait and catcher.http_url:
            write("Serving until Ctrl-C.\n")
            (out or sys.stdout).flush()
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(0.5)
    finally:
        worker.stop()
        thread.join(30)
        if catcher is not None:
            catcher.stop_thread()
        queue.close()
    return 0


def _until(condition: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise SystemExit("mailout queue demo: the worker did not get there in time")
        time.sleep(0.1)
