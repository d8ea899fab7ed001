"""The durable queue: mail stored before ``send`` returns, delivered by workers with retries.

    from mailout.queue import enqueue
    enqueue([message], priority="high", not_before=timedelta(minutes=5), key="order-42")

or ``EMAIL_BACKEND = "mailout.backends.queue.EmailBackend"`` for every ``send_mail()``; then
``mailout queue worker`` delivers. ``Queue`` is the operator's API (status, list, show, hold,
release, expire, retry, purge, healthcheck); ``Worker`` the delivery loop; ``open_storage``
picks a store by URL (``sqlite:///mailout-queue.db``, ``memory:``, or
``postgresql://user@host/db`` for workers on many machines: ``mailout queue migrate``).
"""

from __future__ import annotations

from mailout.queue.api import Health, Queue
from mailout.queue.enqueue import aenqueue, enqueue
from mailout.queue.hooks import Hooks
from mailout.queue.limits import Limit
from mailout.queue.models import (
    ALL,
    ClaimedMessage,
    Event,
    MessageDetail,
    MessageSummary,
    NewMessage,
    Outcome,
    Priority,
    QueueStats,
    RecipientResult,
    Report,
    State,
)
from mailout.queue.policy import RetryPolicy
from mailout.queue.storage import Storage, open_storage
from mailout.queue.stored import QueuedMessage
from mailout.queue.worker import Worker, WorkerOptions

__all__ = [
    "ALL",
    "ClaimedMessage",
    "Event",
    "Health",
    "Hooks",
    "Limit",
    "MessageDetail",
    "MessageSummary",
    "NewMessage",
    "Outcome",
    "Priority",
    "Queue",
    "QueueStats",
    "QueuedMessage",
    "RecipientResult",
    "Report",
    "RetryPolicy",
    "State",
    "Storage",
    "Worker",
    "WorkerOptions",
    "aenqueue",
    "enqueue",
    "open_storage",
]
