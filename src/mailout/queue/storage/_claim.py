"""How a claim chooses messages, shared by every storage: fairness first, then rate limits.

A storage supplies one query, "due messages of this state and priority, oldest due first",
and runs these functions inside its claim transaction.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sized
from itertools import zip_longest
from typing import Final, TypeVar

from mailout.queue.limits import Bucket, Limit, limit_for, take
from mailout.queue.models import Priority, State

__all__ = [
    "CLAIM_WINDOW",
    "Excluded",
    "HeldBack",
    "Widening",
    "apply_limits",
    "excluded",
    "exhausted",
    "pick_fairly",
]

_Found = TypeVar("_Found", bound=Sized)

#: A claim that leaves some mailers or domains out (at their connection cap, out of tokens)
#: looks for the others' mail among the first ``CLAIM_WINDOW x limit`` due messages of each
#: state and priority first: filtering every queued row, while one big domain was at its cap,
#: cost PostgreSQL 90 ms a claim at 100 000 queued (and more with more), claim after claim.
CLAIM_WINDOW: Final = 2


#: What a claim leaves out: ("mailer", name) and ("domain", name).
Excluded = frozenset[tuple[str, str]]


def excluded(mailers: Iterable[str], domains: Iterable[str]) -> Excluded:
    return frozenset([*(("mailer", m) for m in mailers), *(("domain", d) for d in domains)])


class HeldBack:
    """Sets of left-out mail, each with a time until which a claim that leaves out at least
    as much is held back (it would find no more than the claim that left that set out). Several
    sets are kept, so that sets that come and go in turn (a domain at its cap, a mailer's batch
    claimed ahead) are each held back; past ``REMEMBERED``, the one whose time ends first goes
    (never the one just set). Thread-safe."""

    REMEMBERED: Final = 16

    def __init__(self) -> None:
        self._until: dict[Excluded, float] = {}
        self._lock = threading.Lock()

    def hold(self, left_out: Excluded, until: float) -> None:
        with self._lock:
            self._until[left_out] = until
            if len(self._until) > self.REMEMBERED:
                older = [k for k in self._until if k != left_out]
                del self._until[min(older, key=self._until.__getitem__)]

    def until(self, leaving_out: Excluded, now: float) -> float:
        """Until when a claim leaving out ``leaving_out`` is held back (``now`` or earlier:
        it is not)."""
        with self._lock:
            for key in [k for k, until in self._until.items() if until <= now]:
                del self._until[key]
            return max((u for k, u in self._until.items() if k <= leaving_out), default=now)

    def release(self, leaving_out: Excluded | None = None) -> None:
        """Hold back no more the claims that leave out as much as ``leaving_out`` or less
        (every claim, if None)."""
        with self._lock:
            if leaving_out is None:
                self._until.clear()
                return
            for key in [k for k in self._until if k <= leaving_out]:
                del self._until[key]


class Widening:
    """When such a claim finds less than it asked for in its window, it looks at the whole
    queue, so that mail behind a long run of left-out mail (a mailer out of its daily quota,
    a slow domain at its cap) still goes. A look that finds a full batch leaves the next claim
    free to look again (that mail keeps flowing at full speed); one that comes back short may
    have read every queued row for little, so it is rationed: after one that took ``t``
    seconds, the next comes ``max(FLOOR, t / SHARE)`` seconds later (2 % of one claimer's
    time at most) -- for claims that leave out at least as much as that one did (``HeldBack``).
    A claim that leaves out less (a mailer's delivery ended, a domain has a slot again) may
    find what it could not: it looks at once."""

    FLOOR: Final = 5.0
    SHARE: Final = 0.02

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._rationed = HeldBack()

    def allowed(self, leaving_out: Excluded = frozenset()) -> bool:
        now = self._clock()
        return self._rationed.until(leaving_out, now) <= now

    def look(
        self, find: Callable[[], _Found], *, enough: int, leaving_out: Excluded = frozenset()
    ) -> _Found:
        """Run ``find`` (a look at the whole queue, ``leaving_out`` that mail); unless it
        found ``enough``, ration the looks that leave out as much by the time this one took."""
        started = self._clock()
        found = None
        try:
            found = find()
            return found
        finally:
            if found is None or len(found) < enough:
                took = self._clock() - started
                self._rationed.hold(leaving_out, self._clock() + max(self.FLOOR, took / self.SHARE))
            else:  # mail outside what it left out: claims that leave out less find it too
                self._rationed.release(leaving_out)


#: (state, priority, how many) -> [(id, mailer), ...] in due order
Candidates = Callable[[State, Priority, int], list[tuple[int, str]]]


def _fetch(candidates: Candidates, state: State, count: int) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for priority in Priority:  # HIGH, NORMAL, LOW
        if len(found) >= count:
            break
        found += candidates(state, priority, count - len(found))
    return found


def pick_fairly(candidates: Candidates, limit: int) -> list[tuple[int, str]]:
    """Up to ``limit`` due messages: half new mail, half retries, each side taking what the
    other leaves (Postfix's queue manager interleaves its incoming and deferred queues the
    same way, so a pile of retries never starves new mail, nor the reverse)."""
    if limit < 1:
        return []
    new = _fetch(candidates, State.QUEUED, limit)
    retries = _fetch(candidates, State.DEFERRED, limit)
    new_share = max((limit + 1) // 2, limit - len(retries))
    new = new[:new_share]
    retries = retries[: limit - len(new)]
    mixed = (m for pair in zip_longest(new, retries) for m in pair if m is not None)
    return list(mixed)


def exhausted(limits: Mapping[str, Limit], buckets: Mapping[str, Bucket], now: float) -> list[str]:
    """Mailers that may send nothing right now: left out of the claim's queries."""
    out = []
    for name, bucket in buckets.items():
        limit = limit_for(limits, name)
        if limit is not None and take(limit, bucket, 1, now)[0] == 0:
            out.append(name)
    return out


def apply_limits(
    picked: list[tuple[int, str]],
    limits: Mapping[str, Limit],
    buckets: Mapping[str, Bucket],
    now: float,
) -> tuple[list[int], dict[str, Bucket]]:
    """Keep what each limited mailer's tokens and daily quota allow; return the ids kept and
    the buckets to save."""
    allowed: dict[str, int] = {}
    changed: dict[str, Bucket] = {}
    for mailer, count in Counter(mailer for _, mailer in picked).items():
        limit = limit_for(limits, mailer)
        if limit is None:
            allowed[mailer] = count
            continue
        allowed[mailer], changed[mailer] = take(limit, buckets.get(mailer), count, now)
    chosen = []
    for id_, mailer in picked:
        if allowed[mailer] > 0:
            allowed[mailer] -= 1
            chosen.append(id_)
    return chosen, changed
