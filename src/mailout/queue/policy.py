"""When to try again: exponential backoff with jitter between two bounds, and a lifetime.

The defaults are Postfix's: ``minimal_backoff_time`` 300 s, ``maximal_backoff_time`` 4000 s
(about 67 minutes), ``maximal_queue_lifetime`` 5 days. The policy is an immutable value; its
methods are pure (the random draw is an argument), so a test can check a schedule exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mailout.conf import settings
from mailout.exceptions import ImproperlyConfigured

__all__ = ["RetryPolicy"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Delays after a temporary failure: ``min(max_delay, min_delay * factor**(attempt-1))``
    spread by ``±jitter`` (a fraction) and kept within ``[min_delay, max_delay]``; a message
    still not delivered ``lifetime`` seconds after it was queued expires."""

    min_delay: float = 300.0
    max_delay: float = 4000.0
    lifetime: float = 5 * 86400.0
    factor: float = 2.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if not 0 < self.min_delay <= self.max_delay:
            raise ImproperlyConfigured(
                "EMAIL_QUEUE_MIN_BACKOFF/EMAIL_QUEUE_MAX_BACKOFF: need 0 < minimum <= maximum, "
                f"got {self.min_delay} and {self.max_delay}"
            )
        if not self.lifetime > 0:
            raise ImproperlyConfigured(
                f"EMAIL_QUEUE_LIFETIME: must be above 0, got {self.lifetime}"
            )
        if self.factor < 1 or not 0 <= self.jitter < 1:
            raise ImproperlyConfigured("retry policy: factor must be >= 1 and 0 <= jitter < 1")

    @classmethod
    def from_settings(cls) -> RetryPolicy:
        return cls(
            min_delay=settings.EMAIL_QUEUE_MIN_BACKOFF,
            max_delay=settings.EMAIL_QUEUE_MAX_BACKOFF,
            lifetime=settings.EMAIL_QUEUE_LIFETIME,
        )

    def next_delay(self, attempt: int, draw: float = 0.5) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1 for the first).

        ``draw`` (in ``[0, 1)``, from a random source) spreads retries of messages that failed
        together, so that a relay coming back is not hit by all of them in the same second.
        """
        if attempt < 1:
            raise ValueError(f"attempt numbers start at 1, got {attempt}")
        # Past the point where the doubling exceeds max_delay the exponent changes nothing;
        # capping it keeps the float finite for any attempt count.
        steps = attempt - 1
        if self.factor > 1:
            steps = min(
                steps, math.ceil(math.log(self.max_delay / self.min_delay, self.factor)) + 1
            )
        # Spread the capped delay, so that retries stay spread once they reach max_delay.
        base = min(self.max_delay, self.min_delay * self.factor**steps)
        spread = base * (1 + self.jitter * (2 * draw - 1))
        return min(self.max_delay, max(self.min_delay, spread))

    def expires_at(self, queued_at: float) -> float:
        return queued_at + self.lifetime

    def next_attempt(
        self, attempt: int, *, now: float, queued_at: float, draw: float
    ) -> float | None:
        """When to try again after attempt ``attempt`` failed for now; None once expired.

        The last retry is moved up to the moment of expiry, so a message expires on time and
        gets one last try then, rather than up to ``max_delay`` later.
        """
        deadline = self.expires_at(queued_at)
        if now >= deadline:
            return None
        return min(now + self.next_delay(attempt, draw), deadline)
