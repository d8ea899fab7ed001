"""Provider quotas: a rate per mailer (a token bucket) and an optional daily quota.

The bucket's state lives in the store, so every worker on the same store shares one limit;
the arithmetic is here, pure, so every storage computes it the same way.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Mapping
from dataclasses import dataclass

from mailout._units import Rate
from mailout.conf import settings

__all__ = ["Bucket", "Limit", "limit_for", "limits_from_settings", "seconds_until_token", "take"]

_EPSILON = 1e-9  # 2.9999999 tokens after float arithmetic are 3


@dataclass(frozen=True, slots=True)
class Limit:
    """At most ``rate`` messages (a burst of up to one second's worth, at least one), and at
    most ``daily`` messages per UTC day, for one mailer."""

    rate: Rate | None = None
    daily: int | None = None

    @property
    def burst(self) -> float:
        return max(1.0, self.rate.per_second) if self.rate is not None else math.inf


@dataclass(frozen=True, slots=True)
class Bucket:
    """What the store keeps per mailer between claims."""

    tokens: float
    updated_at: float
    day: str
    day_count: int


def utc_day(now: float) -> str:
    return datetime.datetime.fromtimestamp(now, datetime.UTC).strftime("%Y-%m-%d")


def take(limit: Limit, bucket: Bucket | None, want: int, now: float) -> tuple[int, Bucket]:
    """How many of ``want`` messages may go now, and the bucket after taking them."""
    day = utc_day(now)
    if bucket is None:
        tokens, count = limit.burst, 0
    else:
        elapsed = max(0.0, now - bucket.updated_at)  # a clock stepping back refills nothing
        rate = limit.rate.per_second if limit.rate is not None else 0.0
        tokens = min(limit.burst, bucket.tokens + elapsed * rate)
        count = bucket.day_count if bucket.day == day else 0
    allowed = want
    if limit.rate is not None:
        allowed = min(allowed, math.floor(tokens + _EPSILON))
    if limit.daily is not None:
        allowed = min(allowed, limit.daily - count)
    allowed = max(0, allowed)
    left = tokens - allowed if limit.rate is not None else 0.0
    return allowed, Bucket(left, now, day, count + allowed)


def seconds_until_token(limit: Limit, bucket: Bucket | None, now: float) -> float:
    """How long until at least one message may go (0 if one may go now)."""
    allowed, _ = take(limit, bucket, 1, now)
    if allowed or limit.rate is None:
        return 0.0 if allowed else math.inf  # a spent daily quota waits for tomorrow
    assert bucket is not None
    return max(0.0, (1 - bucket.tokens) / limit.rate.per_second - (now - bucket.updated_at))


def limit_for(limits: Mapping[str, Limit], mailer: str) -> Limit | None:
    """The mailer's own limit, else the one for every mailer (``"*"``), else none."""
    return limits.get(mailer) or limits.get("*")


def limits_from_settings(rate: Rate | None = None) -> dict[str, Limit]:
    """The limit of each mailer named in EMAIL_QUEUE_RATE / EMAIL_QUEUE_DAILY_QUOTA (``"*"``
    for every mailer); ``rate`` (the worker's ``--rate``) replaces the rate of every mailer."""
    rates: dict[str, Rate] = dict(settings.EMAIL_QUEUE_RATE)
    quotas: dict[str, int] = dict(settings.EMAIL_QUEUE_DAILY_QUOTA)
    if rate is not None:
        rates = {"*": rate}
    return {name: Limit(rates.get(name), quotas.get(name)) for name in sorted({*rates, *quotas})}
