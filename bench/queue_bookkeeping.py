"""The queue worker's own work a message, without the network or the database.

    .venv/bin/python bench/queue_bookkeeping.py

For 200 shipping notices (~4.8 KB, as bench/queue_pg.py drains), the CPU each step of a
worker's path takes a message, best of 30 rounds: reading a claimed PostgreSQL row back,
building the envelope, framing the bytes for BDAT (a body stored in canonical form skips the
line-ending check; a row an older mailout stored is scanned: both shown, see
mailout/_canonical.py), judging the server's replies, building
the record statement's parameters (the cursor only keeps them), and the log lines of one
commit. One process, no I/O: steadier than a drain on a shared machine, and a guide to
where a worker's CPU a message goes (bench/queue_pg.py measures the whole).
"""

from __future__ import annotations

import io
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from queue_enqueue import notice  # noqa: E402

import mailout  # noqa: E402
from mailout.queue.classify import judge  # noqa: E402
from mailout.queue.enqueue import prepare  # noqa: E402
from mailout.queue.models import Report  # noqa: E402
from mailout.queue.policy import RetryPolicy  # noqa: E402
from mailout.queue.report import LineReporter  # noqa: E402
from mailout.queue.storage._pgrows import claimed  # noqa: E402
from mailout.queue.storage._pgsql import record_outcomes  # noqa: E402
from mailout.queue.storage._rows import stored_metadata  # noqa: E402
from mailout.smtp import SendResult  # noqa: E402
from mailout.smtp._protocol.content import encode_bdat  # noqa: E402
from mailout.smtp._protocol.reply import Reply  # noqa: E402

COUNT = 200


class KeepingCursor:
    """Keeps what it is given; answers ``record`` as if every outcome was recorded."""

    params: dict[str, Any]

    def execute(self, query: str, params: dict[str, Any]) -> None:
        self.params = params

    def fetchall(self) -> list[tuple[int]]:
        return [(i,) for i in self.params["ids"]]


def best(name: str, step: Callable[[], object], rounds: int = 30) -> None:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    print(f"  {name:<28} {min(times) / COUNT * 1e6:5.2f} µs a message", flush=True)


def main() -> None:
    mailout.configure({"EMAIL_QUEUE_MAILER": None})
    rendered = list(prepare([notice(n) for n in range(COUNT)]))
    metadata = json.dumps(stored_metadata(rendered[0]))  # as the store writes it
    rows = [
        (n, 1, "default", 1, m.sender, json.dumps(list(m.recipients)), m.message_id,
         1.0, 1.0, 0, metadata, bytes(m.data))
        for n, m in enumerate(rendered)
    ]  # fmt: skip
    messages = [claimed(row, "bench") for row in rows]
    older = [bytes(m.data) for m in messages]  # an older mailout's rows: plain bytes
    results = [
        SendResult(
            {m.recipients[0]: Reply(250, "2.1.5 OK", "2.1.5", "RCPT")},
            {},
            Reply(250, f"2.0.0 OK: queued as Q{m.id}", "2.0.0", "DATA"),
        )
        for m in messages
    ]
    policy = RetryPolicy()
    outcomes = [
        judge(m, r, policy=policy, now=2.0, draw=0.5)
        for m, r in zip(messages, results, strict=True)
    ]
    reports = [Report(m, o) for m, o in zip(messages, outcomes, strict=True)]
    reporter = LineReporter(io.StringIO())
    print(f"Python {sys.version.split()[0]}, {COUNT} notices of {len(rendered[0].data):,} bytes")
    best("claimed row read back", lambda: [claimed(row, "bench") for row in rows])
    best("envelope", lambda: [m.envelope() for m in messages])
    best("BDAT framing", lambda: [encode_bdat(m.data) for m in messages])
    best("BDAT framing, older rows", lambda: [encode_bdat(data) for data in older])
    pairs = list(zip(messages, results, strict=True))
    best("judging the replies", lambda: [
        judge(m, r, policy=policy, now=2.0, draw=0.5) for m, r in pairs
    ])  # fmt: skip
    best("record parameters", lambda: record_outcomes(KeepingCursor(), outcomes, "w", 2.0, True))
    best("log lines", lambda: reporter.delivered(reports))


if __name__ == "__main__":
    main()
