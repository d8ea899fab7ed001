"""Which claimed mail may start a delivery now, and what waits in the worker.

A mailer's mail starts a delivery when the worker has fewer of that mailer's deliveries in
flight than it may (``mailer_concurrency``; by default one for a mailer with a pool of more
than one connection, which spreads a delivery itself, and the worker's concurrency for one
that sends a message at a time) and the connection caps leave it slots (narrowed to the slots
free: caps.py). What cannot start waits, claimed and under its lease (waiting.py), until a
delivery ends, for up to ``patience`` seconds (the lease / 2), then goes back to the queue
unattempted. While a mailer is at its limit, the worker's next claim takes one more batch of
its mail, which waits here and starts the moment a delivery of that mailer ends (no claim in
between); after that, ``mailers_with_enough`` leaves the mailer out of claims.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from mailout.queue.caps import Caps, Slots
from mailout.queue.models import ClaimedMessage
from mailout.queue.storage import Storage
from mailout.queue.waiting import Waiting

__all__ = ["Admission", "Start"]


@dataclass(frozen=True, slots=True)
class Start:
    """A delivery to start: ``messages`` of ``mailer`` over ``slots``, in parts of ``part``
    (fewer connections than the mailer's pool when a cap narrowed it)."""

    mailer: str
    messages: list[ClaimedMessage]
    slots: Slots
    part: int


class Admission:
    def __init__(
        self,
        *,
        storage: Storage,
        worker: str,
        caps: Caps,
        shape: Callable[[str], tuple[int, float]],
        mailer_concurrency: int | None,
        concurrency: int,
        patience: float,
        clock: Callable[[], float],
    ) -> None:
        self.waiting = Waiting(patience)
        self._storage = storage
        self._worker = worker
        self._caps = caps
        self._shape = shape  # a mailer's (connections per delivery, messages per connection)
        self._mailer_concurrency = mailer_concurrency
        self._concurrency = concurrency
        self._clock = clock
        self._delivering: Counter[str] = Counter()  # deliveries in flight, per mailer
        self._lock = threading.Lock()  # finished() comes from the delivery threads

    def admit(self, mailer: str, messages: list[ClaimedMessage], since: float) -> Start | None:
        """What of ``messages`` (of ``mailer``, claimed at ``since``) starts now; the rest
        waits, or, once it has waited its patience out, goes back to the queue."""
        if self.at_limit(mailer):
            self._wait(mailer, messages, since)
            return None
        connections, per_connection = self._shape(mailer)
        admitted, refused, slots = self._caps.admit(mailer, messages, connections, per_connection)
        if refused:
            self._wait(mailer, refused, since)
        if not admitted:
            return None
        # Narrowed by a cap: parts that each fit the connections free, one after another.
        part = len(admitted)
        if 0 < slots.width < connections and not math.isinf(per_connection):
            part = max(1, int(slots.width * per_connection))
        with self._lock:
            self._delivering[mailer] += 1
        return Start(mailer, admitted, slots, part)

    def finished(self, start: Start) -> None:
        """A delivery ended (however): its mailer may start another; its slots are free."""
        with self._lock:
            self._delivering[start.mailer] -= 1
        self._caps.done(start.slots)

    def retry_waiting(self, room: Callable[[], bool], begin: Callable[[Start], None]) -> None:
        """Mail that waits, first in first out, while ``room()`` says a delivery thread is
        free (``begin`` starts each delivery); mail of a mailer at its limit keeps its place."""
        waiting = self.waiting.take()
        kept = []
        n = 0
        try:
            while n < len(waiting) and room():
                mailer, messages, since = waiting[n]
                if self.at_limit(mailer):
                    kept.append(waiting[n])
                else:
                    start = self.admit(mailer, messages, since)
                    if start is not None:
                        begin(start)
                n += 1
        finally:  # those not tried (or the one that raised): still waiting, still ours
            self.waiting.put_back(kept + waiting[n:])

    def give_back_stale(self) -> None:
        """Mail that waited its patience out goes back to the queue, even while every
        delivery thread is busy (a narrowed delivery may take minutes)."""
        now = self._clock()
        stale = self.waiting.stale(now)
        if stale:
            self._storage.release(stale, worker=self._worker, now=now)

    def mailer_limit(self, mailer: str) -> int:
        """Deliveries of ``mailer`` the worker may have in flight (``mailer_concurrency``)."""
        if self._mailer_concurrency is not None:
            return self._mailer_concurrency
        connections, _ = self._shape(mailer)
        return 1 if connections > 1 else self._concurrency

    def at_limit(self, mailer: str) -> bool:
        limit = self.mailer_limit(mailer)
        with self._lock:
            return self._delivering[mailer] >= limit

    def mailers_with_enough(self) -> set[str]:
        """Mailers at their limit whose next batch already waits: the next claim leaves their
        mail out. (A second delivery of a pooled mailer in one process mostly adds threads
        taking turns at the GIL; the batch claimed ahead keeps its connections busy.)"""
        waiting = self.waiting.mailers()
        with self._lock:
            delivering = dict(self._delivering)
        return {m for m in waiting if delivering.get(m, 0) >= self.mailer_limit(m)}

    def waiting_for_slots(self) -> bool:
        """Whether some mail waits for connection slots: mail of a mailer below its limit
        (mail of a mailer at its limit was claimed ahead and waits for its mailer's turn)."""
        return any(not self.at_limit(mailer) for mailer in self.waiting.mailers())

    def _wait(self, mailer: str, messages: list[ClaimedMessage], since: float) -> None:
        if self.waiting.patient(since, self._clock()):
            self.waiting.add(mailer, messages, since)
        else:  # back to the queue, the attempt not counted
            self._storage.release([m.id for m in messages], worker=self._worker, now=self._clock())
