"""The crash test, longer: SIGKILL workers and the enqueuer for minutes, then count.

    .venv/bin/python bench/queue_crash.py                         # 20 000 messages, 2 minutes
    .venv/bin/python bench/queue_crash.py --messages 50000 --seconds 300 --workers 3

The harness is ``tests/queue/crash.py`` (the CI test runs it with 3 000 messages for 20 s).
Exits 1 if any check fails: every acknowledged send is stored, every stored message was
delivered and is recorded sent, nothing unknown was received, duplicates are within the bound
(kills x concurrency x min(batch, 2 x pool size x 50): outcomes are committed as each burst of
replies comes in), only killed workers' leases expired, and workers stopped cleanly at the end.
``--url postgresql://...?schema=...`` runs it on PostgreSQL (a migrated schema).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.queue.crash import run_crash  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--seconds", type=float, default=120.0, help="how long the killing goes on")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--url", help="a migrated queue (default: a new SQLite file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mailout-crash-") as folder:
        result = run_crash(
            args.url or f"sqlite:///{Path(folder) / 'queue.db'}",
            concurrency=args.concurrency,
            messages=args.messages,
            chaos_seconds=args.seconds,
            workers=args.workers,
            batch=args.batch,
            seed=args.seed,
            drain_timeout=600,
        )
    print(result.summary())
    stored_ids = {message_id for message_id, _ in result.stored.values()}
    checks = {
        "every acknowledged send is in the queue": result.acknowledged <= set(result.stored),
        "the enqueuer finished": len(result.stored) == args.messages,
        "every stored message is recorded sent": {s for _, s in result.stored.values()} == {"sent"},
        "every stored message reached the server": stored_ids <= set(result.received),
        "nothing unknown reached the server": set(result.received) <= stored_ids,
        "duplicates within the bound": result.duplicates <= result.bound,
        "only killed workers' leases expired": result.live_leases_expired == [],
        "workers stopped cleanly": set(result.worker_exit_codes) == {0},
    }
    for name, ok in checks.items():
        print(f"  {'ok  ' if ok else 'FAIL'} {name}")
    sys.exit(0 if all(checks.values()) else 1)


if __name__ == "__main__":
    main()
