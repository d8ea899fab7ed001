"""Rate limits, daily quotas and the per-domain cap, as a running worker applies them."""

from __future__ import annotations

import concurrent.futures as cf
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

import mailout
from mailout._units import Rate
from mailout.exceptions import StorageError
from mailout.queue import Hooks, Limit, Queue, Report, RetryPolicy, State, Worker, WorkerOptions
from tests.queue import backends
from tests.queue.conftest import T0, Clock
from tests.queue.helpers import Recorder, drain, make_worker, memory_queue_with_mailers, states
from tests.servers.sink import SinkServer


def messages(count: int, domain: str = "example.com") -> list[mailout.EmailMessage]:
    return [
        mailout.EmailMessage(f"M{n}", "Body", "shop@example.com", [f"u{n}@{domain}"])
        for n in range(count)
    ]


def test_a_rate_limit_paces_deliveries(clock: Clock) -> None:
    mailout.configure(
        {"EMAIL_QUEUE_URL": "memory:", "EMAIL_QUEUE_MAILER": "mailout.backends.locmem.EmailBackend"}
    )
    queue = Queue(clock=clock)
    queue.enqueue(messages(12))
    sent_at: list[float] = []

    def note(report: Report) -> None:
        sent_at.append(round(clock.now - T0, 1))

    drain(queue.storage, clock, limits={"*": Limit(Rate(5, 1))}, hooks=Hooks(sent=[note]))
    # A burst of one second's worth, then one every 1/5 s.
    assert Counter(sent_at) == {0.0: 5, 0.2: 1, 0.4: 1, 0.6: 1, 0.8: 1, 1.0: 1, 1.2: 1, 1.4: 1}
    assert states(queue) == {"sent": 12}


def test_once_stops_when_a_daily_quota_is_spent(clock: Clock) -> None:
    mailout.configure(
        {"EMAIL_QUEUE_URL": "memory:", "EMAIL_QUEUE_MAILER": "mailout.backends.locmem.EmailBackend"}
    )
    queue = Queue(clock=clock)
    queue.enqueue(messages(5))
    recorder = Recorder()
    drain(queue.storage, clock, limits={"*": Limit(daily=3)}, reporter=recorder)
    assert states(queue) == {"sent": 3, "queued": 2}
    assert recorder.named("once-done") == [{"detail": "due mail is held back by rate limits"}]
    clock.advance(86400)
    drain(queue.storage, clock, limits={"*": Limit(daily=3)})
    assert states(queue) == {"sent": 5}


@pytest.mark.parametrize("cap", [1, 3])
def test_parallel_deliveries_per_domain_are_capped(cap: int) -> None:
    backends.SlowBackend.most.clear()
    mailout.configure(
        {"EMAIL_QUEUE_URL": "memory:", "EMAIL_QUEUE_MAILER": "tests.queue.backends.SlowBackend"}
    )
    queue = Queue()
    queue.enqueue(messages(6, "a.example") + messages(6, "b.example"))
    worker = Worker(
        queue.storage,
        options=WorkerOptions(batch=1, concurrency=4, domain_concurrency=cap, poll_interval=0.05),
        hooks=Hooks(),
        policy=RetryPolicy(),
        reporter=Recorder(),
    )
    assert worker.run(once=True, handle_signals=False) == 0
    assert states(queue) == {"sent": 12}
    assert backends.SlowBackend.most == {"a.example": cap, "b.example": cap}
    # Mail over the cap went back unattempted: every message was sent on its first attempt.
    assert {m.attempts for m in queue.list(limit=20)} == {1}


@pytest.mark.parametrize("concurrency", [1, 3])
def test_a_delivery_over_the_domain_cap_goes_narrower_not_back_to_the_queue(
    concurrency: int,
) -> None:
    # The pool would use 4 connections for 200 messages; the domain has 2 slots in all. Each
    # delivery goes over the slots free, in parts; a claim that finds none free waits in the
    # worker for one: nothing goes back to the queue to be claimed again.
    with SinkServer() as sink:
        mailout.configure(
            {"EMAIL_QUEUE_URL": "memory:", "EMAIL_HOST": sink.host, "EMAIL_PORT": sink.port}
        )
        queue = Queue()
        released: list[int] = []
        release = queue.storage.release

        def counting_release(ids: list[int], *, worker: str, now: float) -> int:
            released.extend(ids)
            return release(ids, worker=worker, now=now)

        queue.storage.release = counting_release  # type: ignore[method-assign]
        queue.enqueue(messages(1000, "big.example"))
        options = WorkerOptions(
            batch=200, concurrency=concurrency, domain_concurrency=2, poll_interval=0.05
        )
        worker = Worker(
            queue.storage, options=options, hooks=Hooks(), policy=RetryPolicy(), reporter=Recorder()
        )
        assert worker.run(once=True, handle_signals=False) == 0
        assert sink.count == 1000
    assert states(queue) == {"sent": 1000}
    assert released == []
    if concurrency == 1:
        assert sink.connections == 2  # not the pool's 4: the two slots' worth, reused


def test_mail_waiting_for_a_slot_goes_back_after_half_the_lease(clock: Clock) -> None:
    # Whatever the delivery threads are doing: the loop gives stale waiting mail back first.
    mailout.configure(
        {"EMAIL_QUEUE_URL": "memory:", "EMAIL_QUEUE_MAILER": "mailout.backends.locmem.EmailBackend"}
    )
    queue = Queue(clock=clock)
    queue.enqueue(messages(3))
    worker = make_worker(queue.storage, clock, lease=10.0)
    claimed = queue.storage.claim(worker=worker.id, limit=3, lease=10, now=clock.now)
    worker._admission.waiting.add("default", claimed[:2], clock.now)
    worker._admission.waiting.add("default", claimed[2:], clock.now + 3)
    clock.advance(4.9)
    worker._admission.give_back_stale()
    assert states(queue) == {"sending": 3}
    clock.advance(0.2)  # the first two waited 5.1 s: half the lease
    worker._admission.give_back_stale()
    assert states(queue) == {"queued": 2, "sending": 1}
    assert worker._admission.waiting.clear() == [[claimed[2].id]]


def test_a_stopping_worker_gives_back_what_waits_even_if_the_store_fails(clock: Clock) -> None:
    mailout.configure(
        {"EMAIL_QUEUE_URL": "memory:", "EMAIL_QUEUE_MAILER": "mailout.backends.locmem.EmailBackend"}
    )
    queue = Queue(clock=clock)
    queue.enqueue(messages(2))
    worker = make_worker(queue.storage, clock)
    claimed = queue.storage.claim(worker=worker.id, limit=2, lease=60, now=clock.now)
    worker._admission.waiting.add("default", claimed[:1], clock.now)
    worker._admission.waiting.add("default", claimed[1:], clock.now)
    release = queue.storage.release
    calls: list[list[int]] = []

    def failing_once(ids: list[int], *, worker: str, now: float) -> int:
        calls.append(list(ids))
        if len(calls) == 1:
            raise StorageError("queue database: the server went away")
        return release(ids, worker=worker, now=now)

    queue.storage.release = failing_once  # type: ignore[method-assign]
    with cf.ThreadPoolExecutor(1) as executor:
        assert worker._finish(executor) == 0  # the failure is logged, not raised out of run()
    assert calls == [[claimed[0].id], [claimed[1].id]]
    # The one whose release failed comes back when its lease expires; the other is back now.
    assert states(queue) == {"queued": 1, "sending": 1}
    assert queue.storage.get(claimed[1].id).summary.state == "queued"


def test_a_stopping_worker_gives_back_the_slots_of_deliveries_that_never_started(
    clock: Clock,
) -> None:
    # A delivery admitted (holding its domain's slot) but still queued in the executor when
    # the worker stops is cancelled: its mail and its slot go back, or other workers would
    # wait for that slot until this worker's registration is gone.
    mailout.configure(
        {"EMAIL_QUEUE_URL": "memory:", "EMAIL_QUEUE_MAILER": "mailout.backends.locmem.EmailBackend"}
    )
    queue = Queue(clock=clock)
    queue.enqueue(messages(2, "capped.example"))
    worker = make_worker(queue.storage, clock, domain_concurrency=1)
    claimed = queue.storage.claim(worker=worker.id, limit=2, lease=60, now=clock.now)
    start = worker._admission.admit("default", claimed, clock.now)
    assert start is not None
    assert worker._caps.busy()[0] == {"capped.example"}
    unblock = threading.Event()
    with cf.ThreadPoolExecutor(1) as executor:
        executor.submit(unblock.wait, 10)  # the one delivery thread is busy
        worker._begin(executor, start)  # so this delivery waits in the executor's queue
        threading.Timer(0.2, unblock.set).start()
        assert worker._finish(executor) == 0
    assert worker._caps.busy() == (set(), set())
    assert states(queue) == {"queued": 2}


def test_once_delivers_every_mailer_behind_a_long_run_out_of_quota(
    clock: Clock, tmp_path: Path
) -> None:
    # SQLite looks past its claim window now and then; a once-run must still send all of tx's
    # mail, however long bulk's run of mail (out of its daily quota) in front of it.
    locmem = {"BACKEND": "mailout.backends.locmem.EmailBackend"}
    mailout.configure(
        {
            "EMAIL_QUEUE_URL": f"sqlite:///{tmp_path / 'queue.db'}",
            "MAILERS": {"bulk": locmem, "tx": locmem},
        }
    )
    queue = Queue(clock=clock)
    queue.enqueue(messages(20), mailer="bulk")
    queue.enqueue(messages(10), mailer="tx")
    drain(queue.storage, clock, limits={"bulk": Limit(daily=1)}, batch=2, poll_interval=0.05)
    sent = queue.list(state=State.SENT, limit=50)
    assert sorted(Counter(s.mailer for s in sent).items()) == [("bulk", 1), ("tx", 10)]


@pytest.mark.parametrize("mailer_concurrency", [1, 2])
def test_deliveries_of_one_mailer_in_flight_are_limited_not_those_of_several(
    mailer_concurrency: int,
) -> None:
    # A worker runs at most mailer_concurrency deliveries of one mailer at a time, and other
    # mailers' deliveries beside them.
    backends.SlowBackend.reset()
    slow = "tests.queue.backends.SlowBackend"
    memory_queue_with_mailers(a=slow, b=slow)
    queue = Queue()
    queue.enqueue(messages(4, "a.example"), mailer="a")
    queue.enqueue(messages(4, "b.example"), mailer="b")
    worker = Worker(
        queue.storage,
        options=WorkerOptions(
            batch=1, concurrency=4, mailer_concurrency=mailer_concurrency, poll_interval=0.05
        ),
        hooks=Hooks(),
        policy=RetryPolicy(),
        reporter=Recorder(),
    )
    assert worker.run(once=True, handle_signals=False) == 0
    assert states(queue) == {"sent": 8}
    most = mailer_concurrency
    assert backends.SlowBackend.most == {"a.example": most, "b.example": most}
    assert backends.SlowBackend.most_at_once == 2 * mailer_concurrency
    assert {m.attempts for m in queue.list(limit=20)} == {1}  # none went back and forth


def test_mailer_concurrency_is_a_setting_and_an_option() -> None:
    mailout.configure({"EMAIL_QUEUE_MAILER_CONCURRENCY": 3})
    assert WorkerOptions.from_settings().mailer_concurrency == 3
    assert WorkerOptions.from_settings(mailer_concurrency=2).mailer_concurrency == 2
    with pytest.raises(ValueError, match="mailer_concurrency"):
        WorkerOptions(mailer_concurrency=0)


def test_a_mailers_next_batch_is_claimed_ahead_once_while_its_delivery_runs() -> None:
    # One delivery of the mailer at a time, but its next batch waits in the worker, claimed,
    # so that it starts the moment the delivery ends; no more than that one batch ahead.
    backends.SlowBackend.reset()
    mailout.configure(
        {"EMAIL_QUEUE_URL": "memory:", "EMAIL_QUEUE_MAILER": "tests.queue.backends.SlowBackend"}
    )
    queue = Queue()
    queue.enqueue(messages(8))
    worker = Worker(
        queue.storage,
        options=WorkerOptions(batch=2, concurrency=2, mailer_concurrency=1, poll_interval=0.05),
        hooks=Hooks(),
        policy=RetryPolicy(),
        reporter=Recorder(),
    )
    run = cf.ThreadPoolExecutor(1).submit(worker.run, once=True, handle_signals=False)
    most_claimed = 0
    while not run.done():
        counts = queue.status().counts
        most_claimed = max(most_claimed, counts[State.SENDING])
        time.sleep(0.005)
    assert run.result() == 0
    assert states(queue) == {"sent": 8}
    assert most_claimed == 4  # the batch in flight (0.2 s a message) and the next, waiting
    assert backends.SlowBackend.most == {"example.com": 1}
    assert {m.attempts for m in queue.list(limit=20)} == {1}


def test_by_default_one_delivery_a_pooled_mailer_and_any_number_of_one_without_a_pool() -> None:
    # A mailer whose deliveries go over a pool of connections (mailout's SMTP backend) runs
    # one at a time; one that sends a message at a time (locmem, an API backend) runs as many
    # as the worker's concurrency, as before (test_parallel_deliveries_per_domain_are_capped).
    mailout.configure(
        {
            "EMAIL_QUEUE_URL": "memory:",
            "MAILERS": {
                "smtp": {
                    "BACKEND": "mailout.backends.smtp.EmailBackend",
                    "OPTIONS": {"host": "127.0.0.1"},
                },
                "api": {"BACKEND": "mailout.backends.locmem.EmailBackend"},
            },
        }
    )
    queue = Queue()
    worker = Worker(queue.storage, options=WorkerOptions(concurrency=3), reporter=Recorder())
    assert (worker._admission.mailer_limit("smtp"), worker._admission.mailer_limit("api")) == (1, 3)
    worker = Worker(
        queue.storage,
        options=WorkerOptions(concurrency=3, mailer_concurrency=2),
        reporter=Recorder(),
    )
    assert (worker._admission.mailer_limit("smtp"), worker._admission.mailer_limit("api")) == (2, 2)
