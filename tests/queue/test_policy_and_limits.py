"""Retry policy, durations and rates, token buckets, the domain cap, and the queue settings."""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

import mailout
from mailout._units import Rate, parse_duration, parse_rate
from mailout.conf import settings
from mailout.exceptions import ImproperlyConfigured
from mailout.queue.caps import LocalCaps
from mailout.queue.limits import Bucket, Limit, limits_from_settings, seconds_until_token, take
from mailout.queue.models import ClaimedMessage, Priority
from mailout.queue.policy import RetryPolicy
from tests.queue.conftest import T0

# -- retry policy ------------------------------------------------------------------------------


def test_the_default_schedule_is_postfix_s() -> None:
    policy = RetryPolicy()
    assert [policy.next_delay(a, 0.5) for a in range(1, 8)] == [
        300,
        600,
        1200,
        2400,
        4000,
        4000,
        4000,
    ]
    assert policy.lifetime == 5 * 86400


def test_jitter_spreads_within_the_bounds() -> None:
    policy = RetryPolicy()
    assert policy.next_delay(1, 0.0) == 300  # 240 kept at the minimum
    assert policy.next_delay(1, 0.999) == pytest.approx(359.88)
    assert policy.next_delay(3, 0.0) == pytest.approx(960)
    assert policy.next_delay(40, 0.0) == pytest.approx(3200)  # still spread at the maximum
    assert policy.next_delay(10**6, 0.999) == 4000


@given(
    st.integers(1, 10_000),
    st.floats(0, 1, exclude_max=True),
    st.floats(1, 5000),
    st.floats(0, 0.99),
)
def test_every_delay_is_within_min_and_max(
    attempt: int, draw: float, low: float, jitter: float
) -> None:
    policy = RetryPolicy(min_delay=low, max_delay=low * 10, jitter=jitter)
    delay = policy.next_delay(attempt, draw)
    assert low <= delay <= low * 10
    assert policy.next_delay(attempt + 1, draw) >= delay  # never shorter for a later attempt


def test_expiry() -> None:
    policy = RetryPolicy(lifetime=1000)
    assert policy.next_attempt(1, now=T0 + 10, queued_at=T0, draw=0.5) == T0 + 310
    # Close to the end, the last retry is moved to the moment of expiry...
    assert policy.next_attempt(3, now=T0 + 900, queued_at=T0, draw=0.5) == T0 + 1000
    # ...and after it there is none.
    assert policy.next_attempt(4, now=T0 + 1000, queued_at=T0, draw=0.5) is None


def test_a_policy_is_an_immutable_checked_value() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        RetryPolicy().min_delay = 1  # type: ignore[misc]
    with pytest.raises(ImproperlyConfigured, match="EMAIL_QUEUE_MIN_BACKOFF"):
        RetryPolicy(min_delay=500, max_delay=100)
    with pytest.raises(ImproperlyConfigured, match="EMAIL_QUEUE_LIFETIME"):
        RetryPolicy(lifetime=0)
    with pytest.raises(ValueError, match="start at 1"):
        RetryPolicy().next_delay(0)


def test_policy_from_settings() -> None:
    mailout.configure(
        {
            "EMAIL_QUEUE_MIN_BACKOFF": "1m",
            "EMAIL_QUEUE_MAX_BACKOFF": 600,
            "EMAIL_QUEUE_LIFETIME": "2d",
        }
    )
    assert RetryPolicy.from_settings() == RetryPolicy(60, 600, 172800)


# -- units -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        (90, 90),
        (1.5, 1.5),
        ("90", 90),
        ("300s", 300),
        ("67m", 4020),
        ("2h", 7200),
        ("5d", 432000),
        ("1w", 604800),
        (" 7 days ", 604800),
    ],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text, what="x") == seconds


@pytest.mark.parametrize("bad", ["", "7x", "-5", "5 d s", True, None, "nan"])
def test_bad_durations_name_the_setting(bad: object) -> None:
    with pytest.raises(ValueError, match="--older-than"):
        parse_duration(bad, what="--older-than")


def test_rates() -> None:
    assert parse_rate("14/s", what="r") == Rate(14, 1)
    assert parse_rate("600/min", what="r").per_second == 10
    assert parse_rate("3600 / hour", what="r").per_second == 1
    assert str(parse_rate("14/s", what="r")) == "14/s"
    assert str(parse_rate("1.5/min", what="r")) == "1.5/min"
    for bad in ("14", "0/s", "5/w", "x/s", 14):
        with pytest.raises(ValueError, match="--rate"):
            parse_rate(bad, what="--rate")


# -- token buckets -----------------------------------------------------------------------------


def test_a_bucket_starts_full_and_refills_at_the_rate() -> None:
    limit = Limit(Rate(10, 1))
    allowed, bucket = take(limit, None, 25, T0)
    assert (allowed, bucket.tokens) == (10, 0)
    assert take(limit, bucket, 25, T0 + 0.35)[0] == 3
    assert take(limit, bucket, 25, T0 + 100)[0] == 10  # never more than a burst
    assert take(limit, bucket, 1, T0 - 50)[0] == 0  # a clock stepping back refills nothing


def test_slow_rates_send_one_at_a_time() -> None:
    limit = Limit(Rate(10, 60))  # 10/min
    assert limit.burst == 1
    allowed, bucket = take(limit, None, 5, T0)
    assert allowed == 1
    assert seconds_until_token(limit, bucket, T0) == pytest.approx(6)
    assert seconds_until_token(limit, bucket, T0 + 6) == 0


def test_a_daily_quota_resets_at_midnight_utc() -> None:
    limit = Limit(daily=100)
    midnight = 1_800_057_600.0  # 2027-01-16T00:00:00Z
    allowed, bucket = take(limit, Bucket(0, midnight - 10, "2027-01-15", 99), 5, midnight - 5)
    assert (allowed, bucket.day_count) == (1, 100)
    assert take(limit, bucket, 5, midnight - 1)[0] == 0
    assert math.isinf(seconds_until_token(limit, bucket, midnight - 1))
    assert take(limit, bucket, 5, midnight + 1)[0] == 5


def test_limits_from_settings() -> None:
    mailout.configure({"EMAIL_QUEUE_RATE": "14/s", "EMAIL_QUEUE_DAILY_QUOTA": {"ses": 50000}})
    assert limits_from_settings() == {"*": Limit(Rate(14, 1)), "ses": Limit(None, 50000)}
    assert limits_from_settings(Rate(5, 1))["*"] == Limit(Rate(5, 1))  # --rate wins


# -- the domain cap ----------------------------------------------------------------------------


def claimed(n: int, domain: str) -> ClaimedMessage:
    return ClaimedMessage(
        n, 1, "m", Priority.NORMAL, "s@x", (f"r{n}@{domain}",), b"x", "<id>", T0, T0
    )


def test_the_domain_cap_counts_connections() -> None:
    cap = LocalCaps(3)
    batch = [claimed(n, "big.example") for n in range(500)] + [claimed(900, "small.example")]
    # 4 connections of 50 messages: 500 messages to one domain would take 4 slots; 3 are free,
    # so the delivery goes over 3 connections (narrowed), and nothing goes back to the queue.
    admitted, refused, slots = cap.admit("m", batch, connections=4, per_connection=50)
    assert (len(admitted), refused, slots.width) == (501, [], 3)
    assert slots.counts == {("domain", "big.example"): 3, ("domain", "small.example"): 1}
    assert cap.busy() == ({"big.example"}, set())
    # No slot free for big.example: its mail goes back; small.example's still goes.
    again, rest, other = cap.admit("m", batch[:10] + batch[-1:], connections=4, per_connection=50)
    assert (again, len(rest)) == ([batch[-1]], 10)
    assert (other.counts, other.width) == ({("domain", "small.example"): 1}, 2)  # 2 free
    cap.done(slots)
    cap.done(other)
    assert cap.busy() == (set(), set())


def test_a_domain_with_little_room_narrows_the_whole_delivery() -> None:
    cap = LocalCaps(2)
    cap.admit("m", [claimed(0, "tight.example")], connections=4, per_connection=50)
    batch = [claimed(n, "wide.example") for n in range(1, 200)] + [claimed(900, "tight.example")]
    admitted, refused, slots = cap.admit("m", batch, connections=4, per_connection=50)
    # tight.example has one slot left: the delivery (both domains' mail) uses one connection.
    assert (len(admitted), refused, slots.width) == (200, [], 1)
    assert slots.counts == {("domain", "wide.example"): 1, ("domain", "tight.example"): 1}


def test_a_mailer_cap_counts_the_connections_of_every_delivery() -> None:
    cap = LocalCaps(20, {"ses": 3})
    batch = [claimed(n, f"d{n % 10}.example") for n in range(200)]
    first, refused, slots = cap.admit("ses", batch, connections=4, per_connection=50)
    assert (len(first), len(refused), slots.width) == (200, 0, 3)  # over 3 connections, not 4
    assert slots.counts["mailer", "ses"] == 3
    assert cap.busy() == (set(), {"ses"})
    assert cap.admit("ses", batch[:5], 4, 50)[0] == []
    assert len(cap.admit("other", batch[:5], 4, 50)[0]) == 5  # another mailer: no cap
    cap.done(slots)
    assert cap.busy() == (set(), set())


def test_a_backend_without_a_pool_takes_one_slot() -> None:
    cap = LocalCaps(20)
    batch = [claimed(n, "a.example") for n in range(100)]
    admitted, refused, slots = cap.admit("m", batch, 1, math.inf)
    assert (len(admitted), refused, slots.counts) == (100, [], {("domain", "a.example"): 1})


# -- settings ----------------------------------------------------------------------------------


def test_queue_settings_have_defaults() -> None:
    assert settings.EMAIL_QUEUE_URL == "sqlite:///mailout-queue.db"
    assert settings.EMAIL_QUEUE_MAILER is None
    assert (settings.EMAIL_QUEUE_MIN_BACKOFF, settings.EMAIL_QUEUE_MAX_BACKOFF) == (300, 4000)
    assert settings.EMAIL_QUEUE_LIFETIME == 432000
    assert settings.EMAIL_QUEUE_DOMAIN_CONCURRENCY == 20
    assert settings.EMAIL_QUEUE_KEEP_BODY_AFTER_SEND is True
    assert settings.EMAIL_QUEUE_RATE == {}
    assert settings.EMAIL_QUEUE_DAILY_QUOTA == {}
    assert "EMAIL_QUEUE_URL" in settings.as_dict()


def test_queue_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMAIL_QUEUE_RATE", '{"ses": "14/s"}')
    monkeypatch.setenv("EMAIL_QUEUE_LEASE", "2m")
    monkeypatch.setenv("EMAIL_QUEUE_KEEP_BODY_AFTER_SEND", "no")
    monkeypatch.setenv("EMAIL_QUEUE_HOOKS", '{"sent": "myapp.hooks.sent"}')
    monkeypatch.setenv("EMAIL_QUEUE_BATCH", "50")
    assert {"ses": Rate(14, 1)} == settings.EMAIL_QUEUE_RATE
    assert settings.EMAIL_QUEUE_LEASE == 120
    assert settings.EMAIL_QUEUE_KEEP_BODY_AFTER_SEND is False
    assert settings.EMAIL_QUEUE_HOOKS == {"sent": ["myapp.hooks.sent"]}
    assert settings.EMAIL_QUEUE_BATCH == 50


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("EMAIL_QUEUE_RATE", "fast"),
        ("EMAIL_QUEUE_RATE", {"ses": "0/s"}),
        ("EMAIL_QUEUE_DAILY_QUOTA", -1),
        ("EMAIL_QUEUE_BATCH", 0),
        ("EMAIL_QUEUE_CONCURRENCY", 1.5),
        ("EMAIL_QUEUE_MAILER_CONCURRENCY", 0),
        ("EMAIL_QUEUE_LEASE", 0),
        ("EMAIL_QUEUE_LIFETIME", "forever"),
        ("EMAIL_QUEUE_HOOKS", {"sending": ["x.y"]}),
        ("EMAIL_QUEUE_HOOKS", {"sent": [1]}),
        ("EMAIL_QUEUE_URL", ""),
        ("EMAIL_QUEUE_KEEP_BODY_AFTER_SEND", "maybe"),
        ("EMAIL_QUEUE_RATE", "{not json"),
    ],
)
def test_bad_queue_settings_name_the_setting(name: str, value: object) -> None:
    mailout.configure({name: value})
    with pytest.raises(ImproperlyConfigured, match=name):
        getattr(settings, name)
