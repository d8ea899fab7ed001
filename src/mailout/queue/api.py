"""``Queue``: the Python API behind ``mailout queue …`` (status, list, show, operations, health)."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mailout.conf import settings
from mailout.queue.enqueue import enqueue
from mailout.queue.models import MessageDetail, MessageSummary, QueueStats, Selection, State
from mailout.queue.storage import Storage, open_storage

if TYPE_CHECKING:
    from mailout.message import EmailMessage
    from mailout.queue.worker import Worker

__all__ = ["Health", "Queue"]


@dataclass(frozen=True, slots=True)
class Health:
    """Whether the queue is being drained: a live worker, and no due mail left waiting long."""

    ok: bool
    reason: str
    live_workers: int
    waited: float  # seconds the earliest due message has been due (0: nothing due)


class Queue:
    """A queue store with the operations an operator needs. ``Queue()`` opens
    ``EMAIL_QUEUE_URL``; ``Queue(url)`` or ``Queue(storage=...)`` another."""

    def __init__(
        self,
        url: str | None = None,
        *,
        storage: Storage | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.storage = storage if storage is not None else open_storage(url)
        self.clock = clock

    def close(self) -> None:
        self.storage.close()

    def __enter__(self) -> Queue:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def enqueue(self, messages: Sequence[EmailMessage], **options: Any) -> list[int | None]:
        """``mailout.queue.enqueue`` into this store."""
        options.setdefault("now", self.clock())
        return enqueue(messages, storage=self.storage, **options)

    def status(self) -> QueueStats:
        return self.storage.stats(now=self.clock())

    def list(self, state: State | str | None = None, *, limit: int = 50) -> list[MessageSummary]:
        return self.storage.list(state=None if state is None else State(state), limit=limit)

    def show(self, id: int) -> MessageDetail:
        return self.storage.get(id)

    def hold(self, selection: Selection) -> int:
        return self.storage.hold(selection, now=self.clock())

    def release(self, selection: Selection) -> int:
        return self.storage.unhold(selection, now=self.clock())

    def expire(self, selection: Selection) -> int:
        return self.storage.expire(selection, now=self.clock())

    def retry(self, selection: Selection = (), *, failed: bool = False) -> int:
        return self.storage.retry(selection, now=self.clock(), failed_only=failed)

    def purge(
        self, states: Collection[State] = (State.SENT,), *, older_than: float, batch: int = 1000
    ) -> int:
        return self.storage.purge(states, before=self.clock() - older_than, batch=batch)

    def healthcheck(self, *, max_wait: float = 600.0, stale: float | None = None) -> Health:
        """Healthy when a worker reported within ``stale`` seconds (default three leases) and
        no due message has waited more than ``max_wait`` seconds."""
        now = self.clock()
        stale = 3 * settings.EMAIL_QUEUE_LEASE if stale is None else stale
        stats = self.storage.stats(now=now, failures=0)
        live = [w for w in stats.workers if now - w.seen_at <= stale]
        waited = 0.0 if stats.oldest_due is None else max(0.0, now - stats.oldest_due)
        if not live:
            reason = f"no worker has reported in the last {stale:g} s"
            return Health(False, reason, 0, waited)
        if waited > max_wait:
            reason = f"due mail has waited {waited:.0f} s (over {max_wait:g} s): not drained"
            return Health(False, reason, len(live), waited)
        reason = f"{len(live)} worker(s) alive; due mail waited {waited:.0f} s at most"
        return Health(True, reason, len(live), waited)

    def worker(self, **options: Any) -> Worker:
        """A ``Worker`` on this store (options as ``Worker``'s keyword arguments)."""
        from mailout.queue.worker import Worker

        return Worker(self.storage, clock=self.clock, **options)
