"""Nothing is lost: processes SIGKILLed at random moments (and right after a 250), restarted.

On SQLite (two workers) and on PostgreSQL (four workers draining one queue). The larger run
is ``bench/queue_crash.py``; these fit CI (about 40 and 25 s).
"""

from __future__ import annotations

from pathlib import Path

from tests.queue.crash import MIN_ENQUEUER_KILLS, MIN_KILLS_AFTER_250, CrashResult, run_crash
from tests.queue.pg import pg_queue


def test_kill_everything_lose_nothing(tmp_path: Path) -> None:
    result = run_crash(
        f"sqlite:///{tmp_path / 'queue.db'}", messages=3000, chaos_seconds=20, seed=9
    )
    check(result, 3000)


def test_four_workers_on_postgresql_killed_and_restarted_lose_nothing() -> None:
    # A lease of 2 s: with four workers, PostgreSQL and the rest of a loaded 2-core machine, a
    # live worker was once not scheduled for the second a lease of 1 s allows.
    with pg_queue() as url:
        result = run_crash(
            url, messages=3000, chaos_seconds=12, workers=4, batch=50, lease=2.0, seed=4
        )
    check(result, 3000)


def check(result: CrashResult, messages: int) -> None:
    print(result.summary())
    # The chaos was real: workers killed at random and between a 250 and its commit, and the
    # enqueuing process killed too.
    assert result.worker_kills >= 5
    assert result.kills_after_250 >= MIN_KILLS_AFTER_250
    assert result.enqueuer_kills >= MIN_ENQUEUER_KILLS
    # Every send that returned is in the queue...
    assert result.acknowledged <= set(result.stored)
    assert len(result.acknowledged) >= 1  # the enqueuer was acknowledged before its kills
    # ...every stored message was delivered, and is recorded as sent...
    assert {state for _, state in result.stored.values()} == {"sent"}
    received = set(result.received)
    assert {message_id for message_id, _ in result.stored.values()} <= received
    # ...nothing reached the server that the queue did not hold...
    assert received <= {message_id for message_id, _ in result.stored.values()}
    # ...and what came twice stays within the documented bound.
    assert result.duplicates <= result.bound
    # No lease of a live worker ever expired: a message is only taken over from a killed
    # worker (and claims are disjoint: FOR UPDATE SKIP LOCKED, BEGIN IMMEDIATE).
    assert result.live_leases_expired == []
    # Workers still running at the end stopped cleanly on SIGTERM.
    assert set(result.worker_exit_codes) == {0}
    # The enqueuer finished: all of them are there.
    assert len(result.stored) == messages
