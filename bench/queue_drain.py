"""How fast one worker drains the queue, next to sending the same messages directly.

    .venv/bin/python bench/queue_drain.py              # a few minutes
    .venv/bin/python bench/queue_drain.py --quick

Against the loopback sink of ``tests/servers/sink.py`` in its own process (the one
``bench/smtp_bench.py`` uses), at a modelled round trip of 0 and 5 ms, side by side in one run:

* direct: ``get_connection().send_messages(messages)`` on mailout's SMTP backend (its default
  pool of 4 connections), message objects built beforehand: what an application does when it
  sends inside the request. This is the issue's baseline.
* direct, bytes: the same messages rendered beforehand, through ``SMTPPool.send_many`` (the
  client alone: a stricter baseline, with no rendering at all).
* queue: the messages are enqueued first (not timed), then one worker (``Worker.run(once=True)``,
  the settings' defaults: batches of 200, 2 deliveries in flight, the same pool) claims,
  delivers and records every one of them durably; timed from start to the last commit.

After each run the sink's own count must have grown by exactly the number of messages.
Target (issue 9): queue >= 80 % of direct, at 0 and at 5 ms.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from queue_enqueue import notice  # noqa: E402
from tests.servers.sink import SinkServer  # noqa: E402

import mailout  # noqa: E402
from mailout.queue import Hooks, RetryPolicy, Worker, WorkerOptions  # noqa: E402
from mailout.queue.enqueue import enqueue, prepare  # noqa: E402
from mailout.queue.storage.sqlite import SQLiteStorage  # noqa: E402
from mailout.smtp import SMTPClient  # noqa: E402
from mailout.smtp.pool import PoolOptions, SMTPPool  # noqa: E402

SMTP = "mailout.backends.smtp.EmailBackend"


def direct(sink: SinkServer, count: int) -> float:
    messages = [notice(n) for n in range(count)]
    backend = mailout.get_connection(SMTP, host=sink.host, port=sink.port)
    before = sink.count
    started = time.perf_counter()
    assert backend.send_messages(messages) == count
    elapsed = time.perf_counter() - started
    _check(sink, before + count)
    return count / elapsed


def direct_bytes(sink: SinkServer, count: int) -> float:
    items = [(m.envelope(), m.data) for m in _claimable(count)]
    pool = SMTPPool(lambda: SMTPClient(sink.host, sink.port), PoolOptions(size=4))
    before = sink.count
    started = time.perf_counter()
    outcomes = pool.send_many(items)
    elapsed = time.perf_counter() - started
    pool.close()
    assert all(not isinstance(o, Exception) for o in outcomes)
    _check(sink, before + count)
    return count / elapsed


def _claimable(count: int) -> list:  # type: ignore[type-arg]
    from mailout.queue.models import ClaimedMessage, Priority

    return [
        ClaimedMessage(
            n, 1, SMTP, Priority.NORMAL, m.sender, m.recipients, m.data, m.message_id, 0.0, 0.0
        )
        for n, m in enumerate(prepare([notice(n) for n in range(count)]))
    ]


def queue(sink: SinkServer, count: int, folder: str) -> float:
    path = os.path.join(folder, "drain.db")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    storage = SQLiteStorage(path)
    for start in range(0, count, 1000):
        enqueue([notice(n) for n in range(start, min(count, start + 1000))], storage=storage)
    worker = Worker(
        storage, options=WorkerOptions.from_settings(), hooks=Hooks(), policy=RetryPolicy()
    )
    before = sink.count
    started = time.perf_counter()
    assert worker.run(once=True, handle_signals=False) == 0
    elapsed = time.perf_counter() - started
    assert worker.totals.sent == count, worker.totals
    _check(sink, before + count)
    storage.close()
    return count / elapsed


def _check(sink: SinkServer, expected: int) -> None:
    deadline = time.monotonic() + 10
    while sink.count < expected and time.monotonic() < deadline:
        time.sleep(0.01)
    if sink.count != expected:
        raise SystemExit(f"the sink counted {sink.count} messages, expected {expected}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    counts = {0.0: 3000, 5.0: 3000} if args.quick else {0.0: 20000, 5.0: 20000}
    print(
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs; messages a second, ~4.8 KB each"
    )
    with tempfile.TemporaryDirectory(prefix="mailout-bench-") as folder:
        for delay_ms, count in counts.items():
            with SinkServer(delay=delay_ms / 1000, process=True) as sink:
                mailout.configure(
                    {"EMAIL_HOST": sink.host, "EMAIL_PORT": sink.port, "EMAIL_QUEUE_MAILER": None}
                )
                for run in range(1, args.runs + 1):
                    d = direct(sink, count)
                    b = direct_bytes(sink, count)
                    q = queue(sink, count, folder)
                    print(
                        f"{delay_ms:.0f} ms RTT, run {run}: direct send_messages {d:>7,.0f}   "
                        f"direct bytes (pool) {b:>7,.0f}   queue worker {q:>7,.0f}   "
                        f"queue/direct {q / d:.0%}   queue/bytes {q / b:.0%}",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
