"""How a queue worker runs: its options, from the ``EMAIL_QUEUE_*`` settings or given."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mailout._units import Rate
from mailout.conf import settings
from mailout.queue.limits import Limit, limits_from_settings

__all__ = ["WorkerOptions"]


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    """How a worker runs; ``from_settings()`` reads the ``EMAIL_QUEUE_*`` settings."""

    batch: int = 200  # messages per claim, and at most per delivery
    concurrency: int = 2  # deliveries in flight at once
    # Deliveries of one mailer in flight at once; None: one for a mailer whose deliveries go
    # over a pool of connections, ``concurrency`` for one that sends a message at a time.
    mailer_concurrency: int | None = None
    lease: float = 60.0  # seconds a claim survives the worker's silence
    limits: Mapping[str, Limit] = field(default_factory=dict)
    domain_concurrency: int = 20
    connections: Mapping[str, int] = field(default_factory=dict)  # per mailer ("*": each)
    keep_body: bool = True
    poll_interval: float = 1.0  # longest sleep when nothing is due (and no wake-up came)

    def __post_init__(self) -> None:
        per_mailer = 1 if self.mailer_concurrency is None else self.mailer_concurrency
        if min(self.batch, self.concurrency, per_mailer, self.domain_concurrency) < 1:
            raise ValueError(
                "batch, concurrency, mailer_concurrency and domain_concurrency must be at least 1"
            )
        if not self.lease > 0 or not self.poll_interval > 0:
            raise ValueError("lease and poll_interval must be above 0 seconds")

    @classmethod
    def from_settings(cls, *, rate: Rate | None = None, **overrides: Any) -> WorkerOptions:
        values: dict[str, Any] = {
            "batch": settings.EMAIL_QUEUE_BATCH,
            "concurrency": settings.EMAIL_QUEUE_CONCURRENCY,
            "mailer_concurrency": settings.EMAIL_QUEUE_MAILER_CONCURRENCY,
            "lease": settings.EMAIL_QUEUE_LEASE,
            "limits": limits_from_settings(rate),
            "domain_concurrency": settings.EMAIL_QUEUE_DOMAIN_CONCURRENCY,
            "connections": settings.EMAIL_QUEUE_CONNECTIONS,
            "keep_body": settings.EMAIL_QUEUE_KEEP_BODY_AFTER_SEND,
            "poll_interval": settings.EMAIL_QUEUE_POLL_INTERVAL,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)
