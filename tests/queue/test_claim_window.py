"""A claim that leaves mail out looks in a window first, and at the whole queue only rarely.

SQLite and PostgreSQL (the memory store always looks at the whole queue): with some mailers or
domains left out, a claim first looks among the first ``CLAIM_WINDOW x limit`` due messages;
if it finds less than it asked for, it looks at the whole queue, but after such a look that
took ``t`` seconds, not again for ``max(Widening.FLOOR, t / Widening.SHARE)`` seconds.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mailout.queue.storage import Storage
from mailout.queue.storage._claim import CLAIM_WINDOW, HeldBack, Widening, excluded
from tests.queue.conftest import STORAGES, T0, new


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["postgres", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Storage, Clock]]:
    clock = Clock()
    with STORAGES[request.param](tmp_path) as storage:
        storage._widening = Widening(clock)  # type: ignore[attr-defined]
        yield storage, clock


def test_a_look_at_the_whole_queue_that_comes_back_short_is_rationed(
    store: tuple[Storage, Clock],
) -> None:
    storage, clock = store
    busy = [new(n, to=(f"u{n}@busy.example",)) for n in range(CLAIM_WINDOW * 2 + 5)]
    storage.enqueue([*busy, new(900, to=("a@free.example",))], now=T0)
    claim = {"worker": "w", "limit": 2, "lease": 30, "now": T0 + 1}
    out = {"busy.example"}
    # The window (the first four due) is all busy mail: the whole queue is looked at; it
    # finds one of the two asked for.
    assert [c.recipients[0] for c in storage.claim(**claim, exclude_domains=out)] == [
        "a@free.example"
    ]
    storage.enqueue([new(901, to=("b@free.example",))], now=T0)
    # Looked at just now and came back short: only the window, until the floor has passed.
    assert storage.claim(**claim, exclude_domains=out) == []
    clock.now += Widening.FLOOR - 0.5
    assert storage.claim(**claim, exclude_domains=out) == []
    clock.now += 1.0
    assert [c.recipients[0] for c in storage.claim(**claim, exclude_domains=out)] == [
        "b@free.example"
    ]


def test_mail_behind_the_window_keeps_flowing_while_looks_find_full_batches(
    store: tuple[Storage, Clock],
) -> None:
    storage, _ = store
    busy = [new(n, to=(f"u{n}@busy.example",)) for n in range(CLAIM_WINDOW * 2 + 5)]
    free = [new(900 + n, to=(f"f{n}@free.example",)) for n in range(5)]
    storage.enqueue([*busy, *free], now=T0)
    claim = {"worker": "w", "limit": 2, "lease": 30, "now": T0 + 1}
    found = [storage.claim(**claim, exclude_domains={"busy.example"}) for _ in range(3)]
    assert [len(batch) for batch in found] == [2, 2, 1]  # no waiting between full batches


def test_a_window_with_enough_is_all_a_claim_reads(store: tuple[Storage, Clock]) -> None:
    storage, _ = store
    storage.enqueue(
        [new(1, to=("a@busy.example",)), new(2, to=("b@free.example",)), new(3)], now=T0
    )
    claimed = storage.claim(worker="w", limit=1, lease=30, now=T0, exclude_domains={"busy.example"})
    assert [c.recipients[0] for c in claimed] == ["b@free.example"]
    assert storage._widening.allowed()  # type: ignore[attr-defined]  # not spent: not used


def test_widening_is_rationed_by_the_time_it_took() -> None:
    clock = Clock()
    widening = Widening(clock)
    assert widening.allowed()

    def slow_look() -> str:
        clock.now += 0.5  # half a second reading the whole queue
        return "found"

    assert widening.look(slow_look, enough=10) == "found"  # 5 found, 10 asked: short
    clock.now += 0.5 / Widening.SHARE - 0.1
    assert not widening.allowed()
    clock.now += 0.2
    assert widening.allowed()
    assert widening.look(slow_look, enough=5) == "found"  # enough: the next may come at once
    assert widening.allowed()


def test_a_claim_that_leaves_out_less_than_a_short_look_did_looks_at_once(
    store: tuple[Storage, Clock],
) -> None:
    # A worker's delivery of tx ran while bulk (out of quota) filled the window: the claim
    # that left both out came back short. Once tx's delivery ends, a claim leaving out bulk
    # alone must find tx's mail behind bulk's run at once, not seconds later.
    storage, _ = store
    bulk = [new(n, mailer="bulk") for n in range(CLAIM_WINDOW * 2 + 5)]
    storage.enqueue([*bulk, new(900, mailer="tx")], now=T0)
    claim = {"worker": "w", "limit": 2, "lease": 30, "now": T0 + 1}
    assert storage.claim(**claim, exclude_mailers={"bulk", "tx"}) == []
    assert storage.claim(**claim, exclude_mailers={"bulk", "tx", "other"}) == []  # rationed
    [found] = storage.claim(**claim, exclude_mailers={"bulk"})
    assert found.mailer == "tx"


def test_the_ration_holds_for_claims_that_leave_out_at_least_as_much() -> None:
    clock = Clock()
    widening = Widening(clock)
    out = excluded(["bulk"], ["busy.example"])
    widening.look(list, enough=2, leaving_out=out)
    assert not widening.allowed(out)
    assert not widening.allowed(out | excluded(["tx"], []))
    assert widening.allowed(excluded(["bulk"], []))  # busy.example's mail may come now
    assert widening.allowed(excluded([], ["busy.example"]))
    assert widening.allowed(frozenset())


def test_short_looks_that_leave_out_different_mail_in_turn_are_each_rationed() -> None:
    # A mailer's batch claimed ahead and a domain at its cap, left out in turn: each set's
    # whole-queue look is rationed, not every other claim reading the whole queue.
    clock = Clock()
    widening = Widening(clock)
    mailer, domain = excluded(["m"], []), excluded([], ["example.com"])
    widening.look(list, enough=2, leaving_out=mailer)
    assert widening.allowed(domain)
    widening.look(list, enough=2, leaving_out=domain)
    assert not widening.allowed(mailer)
    assert not widening.allowed(domain)
    assert not widening.allowed(mailer | domain)
    assert widening.allowed(frozenset())
    widening.look(lambda: [1, 2], enough=2, leaving_out=mailer | domain)  # found enough
    assert widening.allowed(mailer)
    assert widening.allowed(domain)


def test_a_full_memory_of_short_looks_keeps_the_newest() -> None:
    clock = Clock()
    widening = Widening(clock)

    def slow() -> list[int]:
        clock.now += 1.0  # rationed for 50 s
        return []

    for n in range(HeldBack.REMEMBERED):
        widening.look(slow, enough=1, leaving_out=excluded([f"m{n}"], []))
    fast = excluded(["new"], [])
    widening.look(list, enough=1, leaving_out=fast)  # rationed for the floor only: 5 s
    assert not widening.allowed(fast)
