"""A claim that left busy mail out and found nothing is not repeated until something changed."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

import mailout
from mailout.queue import Hooks, Queue, RetryPolicy, State, Worker, WorkerOptions
from mailout.queue.caps import Slots
from mailout.queue.leftout import LeftOut
from mailout.queue.models import ClaimedMessage
from mailout.queue.storage import Storage
from tests.queue import backends
from tests.queue.helpers import (
    Recorder,
    live_worker,
    running,
    slow_and_quick_mailers,
)


def test_the_same_or_more_left_out_waits_out_the_pause() -> None:
    left_out = LeftOut(pause=2.0)
    assert left_out.wait({"a.example"}, set(), 100.0) == 0.0  # nothing found empty yet
    left_out.found_nothing({"a.example"}, set(), 100.0, news=left_out.news())
    assert left_out.wait({"a.example"}, set(), 100.5) == 1.5
    assert left_out.wait({"a.example", "b.example"}, {"ses"}, 101.0) == 1.0  # more left out
    assert left_out.wait(set(), set(), 100.5) == 0.0  # nothing left out: a plain claim
    assert left_out.wait({"b.example"}, set(), 100.5) == 0.0  # a.example's mail may go now
    assert left_out.wait({"a.example"}, set(), 102.0) == 0.0  # the pause is over


def test_new_mail_ends_the_pause_and_an_empty_plain_claim_starts_none() -> None:
    left_out = LeftOut(pause=2.0)
    left_out.found_nothing({"a.example"}, {"ses"}, 100.0, news=left_out.news())
    assert left_out.wait({"a.example"}, set(), 100.1) == 0.0  # ses's mail was left out then
    assert left_out.wait({"a.example"}, {"ses"}, 100.1) > 0
    left_out.forget()
    assert left_out.wait({"a.example"}, {"ses"}, 100.1) == 0.0
    left_out.found_nothing(
        set(), set(), 100.2, news=left_out.news()
    )  # a claim that left nothing out
    assert left_out.wait({"a.example"}, {"ses"}, 100.3) == 0.0


def test_sets_that_come_and_go_in_turn_are_all_remembered() -> None:
    # A domain at its cap and a mailer with its next batch claimed ahead, in turn: neither
    # claim is repeated within the pause.
    left_out = LeftOut(pause=2.0)
    left_out.found_nothing({"a.example"}, set(), 100.0, news=left_out.news())
    left_out.found_nothing(set(), {"ses"}, 100.1, news=left_out.news())
    assert left_out.wait({"a.example"}, set(), 100.2) == pytest.approx(1.8)
    assert left_out.wait(set(), {"ses"}, 100.2) == pytest.approx(1.9)
    assert left_out.wait({"b.example"}, {"tx"}, 100.2) == 0.0


def test_mail_announced_while_a_claim_ran_is_not_paused_away() -> None:
    left_out = LeftOut(pause=2.0)
    news = left_out.news()  # read before the claim
    left_out.forget()  # NOTIFY: mail enqueued while the claim ran
    left_out.found_nothing({"a.example"}, set(), 100.0, news=news)  # the claim found nothing
    assert left_out.wait({"a.example"}, set(), 100.1) == 0.0


class CountingStorage:
    """The claims a worker makes of ``storage`` (what it left out, how many it got)."""

    def __init__(self, storage: Storage) -> None:
        self.claims: list[tuple[frozenset[str], int]] = []
        claim = storage.claim

        def counting(**kwargs: object) -> list[object]:
            got = claim(**kwargs)  # type: ignore[arg-type]
            excluded = kwargs.get("exclude_domains", ())
            self.claims.append((frozenset(excluded), len(got)))  # type: ignore[arg-type]
            return got  # type: ignore[return-value]

        storage.claim = counting  # type: ignore[method-assign]

    def empty_excluding(self, domain: str) -> int:
        return sum(1 for excluded, got in self.claims if domain in excluded and not got)


def wait_until(condition: object, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.01)
    return bool(condition())  # type: ignore[operator]


def test_slots_freed_elsewhere_do_not_make_a_worker_ask_again_but_new_mail_does() -> None:
    mailout.configure(
        {"EMAIL_QUEUE_URL": "memory:", "EMAIL_QUEUE_MAILER": "mailout.backends.locmem.EmailBackend"}
    )
    queue = Queue()
    queue.enqueue([mailout.EmailMessage("A", "Body", "shop@example.com", ["u@a.example"])])
    counting = CountingStorage(queue.storage)
    worker = Worker(  # a long poll interval: what the worker does sooner, a wake-up did
        queue.storage,
        options=WorkerOptions(batch=10, concurrency=2, domain_concurrency=1, poll_interval=30),
        hooks=Hooks(),
        policy=RetryPolicy(),
        reporter=Recorder(),
    )
    # Another delivery holds a.example's only slot.
    [held] = queue.storage.claim(worker="other", limit=1, lease=60, now=time.time())
    queue.storage.release([held.id], worker="other", now=time.time())
    _, _, other = worker._caps.admit("default", [held], 1, 50)
    thread = threading.Thread(target=worker.run, kwargs={"handle_signals": False})
    thread.start()
    try:
        assert wait_until(lambda: counting.empty_excluding("a.example") == 1)
        for _ in range(10):  # slots given back elsewhere (not a.example's): no new claims
            worker.slots_freed()
            time.sleep(0.02)
        assert counting.empty_excluding("a.example") == 1
        queue.enqueue([mailout.EmailMessage("B", "Body", "shop@example.com", ["u@b.example"])])
        worker.wake()  # new mail: asked at once, not after the 30 s poll interval
        assert wait_until(lambda: queue.status().counts[State.SENT] == 1)
        worker._caps.done(other)  # a.example's slot is free
        worker.slots_freed()
        assert wait_until(lambda: queue.status().counts[State.SENT] == 2)
    finally:
        worker.stop()
        thread.join(10)
    assert not thread.is_alive()


def test_mail_announced_during_a_left_out_claim_goes_while_a_delivery_runs() -> None:
    # Mailer a's delivery runs (2 s) and its next batch waits, claimed ahead, so the worker's
    # claims leave a out. Mail of mailer b enqueued (and announced) while such a claim runs
    # goes at once on the free delivery thread, not when a's delivery ends.
    queue = slow_and_quick_mailers(20, 0)
    worker = live_worker(
        queue.storage, batch=10, concurrency=2, mailer_concurrency=1, poll_interval=5
    )
    announced: list[float] = []
    claim = queue.storage.claim

    def claim_and_announce(**kwargs: object) -> list[object]:
        got = claim(**kwargs)  # type: ignore[arg-type]
        if not got and "a" in kwargs.get("exclude_mailers", ()) and not announced:  # type: ignore[operator]
            queue.enqueue([mailout.EmailMessage("B", "Body", "s@example.com", ["u@b.example"])],
                          mailer="b")  # fmt: skip
            announced.append(time.monotonic())
            worker.wake()
        return got  # type: ignore[return-value]

    queue.storage.claim = claim_and_announce  # type: ignore[method-assign]
    with running(worker):
        assert wait_until(lambda: bool(announced))
        assert wait_until(lambda: any(m.mailer == "b" for m in queue.list(State.SENT)), 1.0)
        assert time.monotonic() - announced[0] < 1.0  # a's delivery takes 2 s


def test_slots_freed_elsewhere_do_not_wake_a_delivering_worker_that_waits_for_none() -> None:
    # Every delivery's end anywhere tells every worker (PostgreSQL's NOTIFY). A worker whose
    # own delivery runs, with no mail waiting for a slot, does not look again for each.
    queue = slow_and_quick_mailers(10, 0)
    counting = CountingStorage(queue.storage)
    with running(live_worker(queue.storage, batch=10, concurrency=2, poll_interval=30)) as worker:
        assert wait_until(lambda: backends.SlowBackend.most_at_once == 1)  # a's 2 s delivery
        time.sleep(0.2)
        before = len(counting.claims)
        for _ in range(10):
            worker.slots_freed()
            time.sleep(0.02)
        assert len(counting.claims) == before


def held_elsewhere(queue: Queue, worker: Worker) -> tuple[ClaimedMessage, Callable[[], Slots]]:
    """b's first message, claimed and given back by another worker, and a way to take its
    connection slots as that worker's delivery would."""
    [held] = queue.storage.claim(
        worker="other", limit=1, lease=60, now=time.time(), exclude_mailers={"a"}
    )
    queue.storage.release([held.id], worker="other", now=time.time())
    admit = worker._caps.admit
    return held, lambda: admit("b", [held], 1, 50)[2]


def test_mail_at_a_cap_goes_when_a_slot_is_freed_elsewhere_while_a_delivery_runs() -> None:
    queue = slow_and_quick_mailers(10, 1)
    worker = live_worker(
        queue.storage, batch=20, concurrency=2, domain_concurrency=1, poll_interval=30
    )
    _, take = held_elsewhere(queue, worker)
    other = take()  # another worker's delivery holds b.example's only slot
    with running(worker):
        assert wait_until(lambda: backends.SlowBackend.most_at_once == 1)  # a's 2 s delivery
        assert wait_until(lambda: worker._capped)  # its claims leave b.example out
        worker._caps.done(other)  # given back elsewhere, and announced
        freed = time.monotonic()
        worker.slots_freed()
        assert wait_until(lambda: any(m.mailer == "b" for m in queue.list(State.SENT)))
        assert time.monotonic() - freed < 1.0  # not when a's delivery ends


def test_mail_claimed_ahead_for_its_mailers_turn_is_not_waiting_for_slots() -> None:
    queue = slow_and_quick_mailers(2, 0)
    worker = live_worker(queue.storage, mailer_concurrency=1)
    claimed = queue.storage.claim(worker=worker.id, limit=2, lease=60, now=time.time())
    assert not worker._admission.waiting_for_slots()
    start = worker._admission.admit("a", claimed[:1], time.time())  # a's one delivery
    assert start is not None
    worker._admission.waiting.add("a", claimed[1:], time.time())  # its next, claimed ahead
    assert not worker._admission.waiting_for_slots()
    worker._admission.finished(start)  # a may deliver again: what waits, waits for slots
    assert worker._admission.waiting_for_slots()


@pytest.mark.parametrize("window", ["reading the slots", "retrying waiting mail"])
def test_a_slot_freed_while_the_loop_looks_at_the_slots_is_not_missed(window: str) -> None:
    # slots_freed() decides from the loop's last look (capped? waiting for a slot?), which is
    # a look old while the loop reads the slots (busy()) or takes them for waiting mail
    # (admit): a slot freed then must still make the loop look again before it waits.
    queue = slow_and_quick_mailers(15, 0)  # a's one delivery: 3 s
    worker = live_worker(
        queue.storage, batch=25, concurrency=2, connections={"b": 1}, poll_interval=30
    )
    with running(worker):
        assert wait_until(lambda: backends.SlowBackend.most_at_once == 1)
        time.sleep(0.3)
        queue.enqueue(
            [mailout.EmailMessage("B", "Body", "s@example.com", ["u@b.example"])], mailer="b"
        )
        _, take = held_elsewhere(queue, worker)
        caps = worker._caps
        busy, admit, done = caps.busy, caps.admit, caps.done
        other: list[Slots] = []
        freed: list[float] = []

        def free_the_slot() -> None:  # the other delivery ends; its NOTIFY arrives now
            done(other.pop())
            freed.append(time.monotonic())
            worker.slots_freed()

        if window == "reading the slots":  # b's slot is taken elsewhere before the read
            other.append(take())

            def reading(*args: Any) -> Any:
                seen = busy(*args)
                if "b" in seen[1] and other:
                    free_the_slot()
                return seen

            caps.busy = reading  # type: ignore[method-assign]
        else:  # b's mail is claimed and refused (its slot taken elsewhere a moment ago)
            tries: list[str] = []

            def taking(mailer: str, *args: Any) -> Any:
                tries.append(mailer)
                if mailer == "b" and tries.count("b") == 1:
                    other.append(take())
                result = admit(mailer, *args)
                if mailer == "b" and tries.count("b") == 2 and other:
                    free_the_slot()  # while its retry is refused
                return result

            caps.admit = taking  # type: ignore[method-assign]
        worker.wake()  # b's mail is announced
        assert wait_until(lambda: bool(freed))
        assert wait_until(lambda: any(m.mailer == "b" for m in queue.list(State.SENT)))
        assert time.monotonic() - freed[0] < 1.0  # not when a's delivery ends
