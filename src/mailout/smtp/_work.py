"""The shared to-do list of one pool send: which messages are left, their outcomes, retries.

Used by the threads of ``SMTPPool`` and the tasks of ``AsyncSMTPPool`` alike (a lock for the
one, an event for the other); items may be fed while the workers send.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from mailout.exceptions import SMTPConnectError, SMTPError, SMTPTimeoutError
from mailout.smtp._models import Envelope, SendResult

if TYPE_CHECKING:
    from mailout.smtp.pool import PoolOptions

__all__ = ["Item", "OnResults", "Outcome", "Work"]

Item = tuple[Envelope, bytes]
Outcome = SendResult | SMTPError
#: ``on_results(indices, outcomes)``: the final outcomes of some items (their indices), as
#: soon as they are known: once per burst of a connection.
OnResults = Callable[[Sequence[int], Sequence[Outcome]], None]
# Errors after which the connection is gone and messages that did not leave whole may be sent
# again. DeliveryUnknownError is not one of them: that message did leave whole.
_CONNECTION_LOST = (SMTPConnectError, SMTPTimeoutError)


class Work:
    """The shared to-do list of one send: indices still to send, and their results.

    Items may arrive while the workers send (``feed``, then ``close``): a caller that encodes
    messages hands them over a batch at a time, so encoding overlaps with the network, and the
    workers connect while the first batch is still being encoded.
    """

    def __init__(
        self, count: int, options: PoolOptions, items: Sequence[Item] = (), max_ahead: int = 0
    ) -> None:
        self.count = count
        # A worker waits for a whole batch while items are coming, or for as many as the feeder
        # may queue ahead, whichever is less (it would wait for it otherwise).
        self.batch = min(options.batch_size, max_ahead or options.batch_size)
        # An item is let go once its outcome is recorded: a send of 100,000 fed items holds
        # those in flight, not every message's bytes.
        self.items: list[Item | None] = list(items)
        self.options = options
        self.todo: deque[int] = deque(range(len(self.items)))
        self.results: list[Outcome | None] = [None] * count
        self.attempts = [0] * count
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)  # for threads (SMTPPool)
        self.event: asyncio.Event | None = None  # for tasks (AsyncSMTPPool), set on a change
        self.feeding = len(self.items) < count
        self.active = self.workers()
        self.error: SMTPError | None = None  # why the last worker could not connect
        # Told each final outcome as soon as it is recorded (outside the lock): a queue
        # records deliveries while the rest are still being sent.
        self.on_results: OnResults | None = None

    def workers(self) -> int:
        return max(1, min(self.options.size, math.ceil(self.count / self.options.batch_size)))

    def _changed(self) -> None:  # with the lock held
        self.changed.notify_all()
        if self.event is not None:
            self.event.set()

    def feed(self, items: Sequence[Item]) -> None:
        """More items to send, in order; waits while too many are queued and unsent, so that
        the caller's encoding stays at most ``max_ahead`` messages ahead of the network."""
        with self.lock:
            start = len(self.items)
            self.items.extend(items)
            self.todo.extend(range(start, len(self.items)))
            self.feeding = len(self.items) < self.count
            self._changed()

    def ahead(self) -> int:
        """Items handed over and not taken yet (0 if no worker is left to take them)."""
        with self.lock:
            return len(self.todo) if self.active else 0

    def wait_for_room(self, limit: int) -> None:
        with self.lock:
            while self.active and len(self.todo) > limit:
                self.changed.wait()

    def close(self) -> None:
        """No more items will come (all of them, or the caller gave up)."""
        with self.lock:
            self.feeding = False
            self._changed()

    def ready(self) -> bool:
        """A batch can be taken now: a whole one, or the last items."""
        return len(self.todo) >= self.batch or (bool(self.todo) and not self.feeding)

    def done(self) -> bool:
        return not self.todo and not self.feeding

    def cannot_connect(self, batch: list[int], error: SMTPError) -> None:
        """A worker could not connect: leave its batch to the others, or fail if none is left."""
        with self.lock:
            self.active -= 1
            self.error = error
            self.todo.extendleft(reversed(batch))
            failed = []
            if self.active == 0:
                while self.todo:
                    failed.append(self.todo.popleft())
                    self.results[failed[-1]] = error
            self._changed()
        self._tell(failed, [error] * len(failed))

    def take(self) -> list[int]:
        """The next batch, waiting (in a thread) while more items are coming."""
        with self.lock:
            while not self.ready() and not self.done():
                self.changed.wait()
            return self._take()

    def take_now(self) -> list[int]:
        with self.lock:
            return self._take() if self.ready() or self.done() else []

    def _take(self) -> list[int]:
        # Batches of batch_size, whatever the timing: which messages share a burst (and so an
        # outcome, when its replies are lost) never depends on thread scheduling.
        count = min(self.options.batch_size, len(self.todo))
        batch = [self.todo.popleft() for _ in range(count)]
        if batch:
            self._changed()  # room for the feeder
        return batch

    def record(self, batch: list[int], outcomes: Sequence[Outcome]) -> bool:
        """Store outcomes; put back those whose connection was lost. True if it was lost."""
        retry: list[int] = []
        final: list[int] = []
        told: list[Outcome] = []
        lost = False
        with self.lock:
            for index, outcome in zip(batch, outcomes, strict=True):
                if isinstance(outcome, _CONNECTION_LOST):
                    lost = True
                    self.attempts[index] += 1
                    if self.attempts[index] <= self.options.retries:
                        retry.append(index)
                        continue
                self.results[index] = outcome
                self.items[index] = None
                final.append(index)
                told.append(outcome)
            self.todo.extendleft(reversed(retry))  # resent first, in their original order
            if retry:
                self._changed()
        self._tell(final, told)
        return lost

    def batch_items(self, batch: list[int]) -> list[Item]:
        """The items of ``batch`` (taken, so not let go yet)."""
        items = [self.items[i] for i in batch]
        assert None not in items
        return items  # type: ignore[return-value]

    def fail_rest(self, error: SMTPError) -> None:
        with self.lock:
            failed = list(self.todo)
            self.todo.clear()
            for index in failed:
                self.results[index] = error
        self._tell(failed, [error] * len(failed))

    def _tell(self, indices: list[int], outcomes: Sequence[Outcome]) -> None:
        if indices and self.on_results is not None:
            self.on_results(indices, outcomes)

    def outcomes(self) -> list[Outcome]:
        missing = self.error or SMTPConnectError("message not sent")
        return [r if r is not None else missing for r in self.results]
