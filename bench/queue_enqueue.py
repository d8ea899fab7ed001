"""How fast the queue stores mail on SQLite, every batch durably committed (WAL, synchronous=FULL).

    .venv/bin/python bench/queue_enqueue.py            # about a minute
    .venv/bin/python bench/queue_enqueue.py --quick

Three views, each for a short notification (~0.5 KB on the wire) and a shipping notice with
text and HTML (~4.8 KB):

* ``send_messages``, batches of 1 000: the queue backend's ``send_messages()`` of message
  objects, so rendering by the fast serialiser (once, at enqueue) is inside the timing;
* ``send_messages``, one message per call: each call its own durable commit;
* store only, batches of 1 000: ``Storage.enqueue()`` of messages rendered beforehand, the
  queue's own cost (what a PostgreSQL storage would replace).

Each rate comes with the process CPU time a message took (µs): the rate also waits for the
disk (one fsync a commit), which other work on a shared machine slows down; the CPU time does
not wait for it.

Targets (issue 9): >= 20 000 messages/s in batches of 1 000, >= 1 000/s one at a time.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import mailout  # noqa: E402
from mailout.backends.queue import EmailBackend as QueueBackend  # noqa: E402
from mailout.queue.enqueue import prepare  # noqa: E402
from mailout.queue.storage.sqlite import SQLiteStorage  # noqa: E402

SENDER = "Example Shop <orders@shop.example.com>"


def short(n: int) -> mailout.EmailMessage:
    return mailout.EmailMessage(
        "Reset your password",
        f"Hello,\n\nClick https://shop.example.com/reset/{n:08x} to choose a new password.\n"
        "The link is valid for one hour.\n",
        SENDER,
        [f"customer{n}@example.org"],
    )


def notice(n: int) -> mailout.EmailMultiAlternatives:
    """A shipping notice like bench/smtp_bench.py's: ~2 KB of text and ~2.5 KB of HTML."""
    lines = [
        f"  {i + 1}. Item number {i} of your order, size M, colour {i}        EUR {9 + i}.90"
        for i in range(8)
    ]
    text = "\n".join(
        [f"Hello Customer {n},", "", f"Your order #{100000 + n} has shipped.", "", *lines, ""]
        + ["Thank you for shopping with us. Returns are free within 30 days of delivery."] * 12
    )
    rows = "".join(f"<tr><td>Item {i}</td><td>EUR {9 + i}.90</td></tr>\n" for i in range(8))
    html = (
        f"<html><body><h1>Your order #{100000 + n} is on its way</h1><table>{rows}</table>"
        + "<p>Thank you for shopping with us. Returns are free within 30 days.</p>\n" * 28
        + "</body></html>"
    )
    message = mailout.EmailMultiAlternatives(
        f"Your order #{100000 + n} has shipped",
        text,
        SENDER,
        [f"Customer {n} <customer{n}@example.org>"],
    )
    message.attach_alternative(html, "text/html")
    return message


KINDS: dict[str, Callable[[int], mailout.EmailMessage]] = {"short": short, "notice": notice}


def fresh_store(folder: str, name: str) -> str:
    path = os.path.join(folder, f"{name}.db")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    return path


Measure = tuple[float, float]  # messages a second, µs of process CPU a message


def _timed(count: int, work: Callable[[], None]) -> Measure:
    started, cpu = time.perf_counter(), time.process_time()
    work()
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    return count / wall, cpu / count * 1e6


def batches(folder: str, kind: str, count: int) -> Measure:
    path = fresh_store(folder, f"batch-{kind}")
    backend = QueueBackend(url=f"sqlite:///{path}")
    groups = [[KINDS[kind](b * 1000 + i) for i in range(1000)] for b in range(count // 1000)]

    def work() -> None:
        for group in groups:
            assert backend.send_messages(group) == len(group)

    return _timed(count, work)


def singles(folder: str, kind: str, count: int) -> Measure:
    path = fresh_store(folder, f"single-{kind}")
    backend = QueueBackend(url=f"sqlite:///{path}")
    messages = [KINDS[kind](n) for n in range(count)]

    def work() -> None:
        for message in messages:
            assert backend.send_messages([message]) == 1

    return _timed(count, work)


def store_only(folder: str, kind: str, count: int) -> Measure:
    storage = SQLiteStorage(fresh_store(folder, f"store-{kind}"))
    rendered = list(prepare([KINDS[kind](n) for n in range(count)]))

    def work() -> None:
        for start in range(0, count, 1000):
            storage.enqueue(rendered[start : start + 1000], now=time.time())

    measure = _timed(count, work)
    storage.close()
    return measure


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer messages (a smoke run)")
    parser.add_argument("--runs", type=int, default=2, help="repeat everything (default 2)")
    args = parser.parse_args()
    many, few = (5000, 500) if args.quick else (20000, 3000)
    mailout.configure({"EMAIL_QUEUE_MAILER": "mailout.backends.dummy.EmailBackend"})
    print(
        f"Python {sys.version.split()[0]}, SQLite {__import__('sqlite3').sqlite_version}, "
        f"{os.cpu_count()} CPUs; messages a second (higher is better) "
        "and [µs of process CPU a message]"
    )
    with tempfile.TemporaryDirectory(prefix="mailout-bench-") as folder:
        for run in range(1, args.runs + 1):
            for kind in KINDS:
                b, bc = batches(folder, kind, many)
                s, sc = singles(folder, kind, few)
                o, oc = store_only(folder, kind, many)
                print(
                    f"run {run} {kind:<7} send_messages x1000: {b:>8,.0f} [{bc:5.1f}]   "
                    f"one per call: {s:>7,.0f} [{sc:5.1f}]   "
                    f"store only x1000: {o:>8,.0f} [{oc:5.1f}]",
                    flush=True,
                )


if __name__ == "__main__":
    main()
