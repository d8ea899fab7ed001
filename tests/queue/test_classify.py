"""What each answer of a mailer becomes, per message and per recipient (table-driven, no I/O)."""

from __future__ import annotations

import pytest

from mailout.exceptions import (
    AuthenticationError,
    BadHeaderError,
    DataRefusedError,
    DeliveryUnknownError,
    InvalidMessageError,
    RecipientsRefusedError,
    SenderRefusedError,
    ServerDisconnected,
    SMTPProtocolError,
    SMTPTimeoutError,
    SMTPUTF8NotSupportedError,
    StartTLSNotOfferedError,
)
from mailout.queue.classify import judge, relay_id
from mailout.queue.models import ClaimedMessage, Priority, State
from mailout.queue.policy import RetryPolicy
from mailout.queue.transport import NotSent
from mailout.smtp import Reply, SendResult
from tests.queue.conftest import T0

A, B, C = "a@example.com", "b@example.com", "c@example.com"
POLICY = RetryPolicy()


def message(
    *recipients: str, attempt: int = 1, queued_at: float = T0, delivered: int = 0
) -> ClaimedMessage:
    return ClaimedMessage(
        7, attempt, "default", Priority.NORMAL, "s@example.com", recipients or (A,), b"x", "<m@x>",
        T0, queued_at, delivered,
    )  # fmt: skip


OK = Reply(250, "OK: queued as ABC123", "2.0.0", ".")
LATER = Reply(451, "try again later", "4.7.1", "RCPT")
FULL = Reply(452, "mailbox full", "4.2.2", "RCPT")
UNKNOWN = Reply(550, "no such user", "5.1.1", "RCPT")


def outcome_of(result: object, *recipients: str, **kw: object):  # type: ignore[no-untyped-def]
    return judge(message(*recipients, **kw), result, policy=POLICY, now=T0 + 10, draw=0.5)  # type: ignore[arg-type]


def test_accepted_for_everyone() -> None:
    out = outcome_of(SendResult({A: OK, B: OK}, {}, OK), A, B)
    assert (out.state, out.recipients, out.delivered, out.due_at) == (State.SENT, (), 2, None)
    assert [(r.recipient, r.status, r.code, r.enhanced, r.relay_id) for r in out.results] == [
        (A, "sent", 250, "2.0.0", "ABC123"),
        (B, "sent", 250, "2.0.0", "ABC123"),
    ]
    assert out.summary == "250 2.0.0 OK: queued as ABC123"


def test_only_the_temporarily_refused_are_retried() -> None:
    out = outcome_of(SendResult({A: OK}, {B: LATER, C: UNKNOWN}, OK), A, B, C)
    assert (out.state, out.recipients, out.delivered) == (State.DEFERRED, (B,), 1)
    assert out.due_at == T0 + 10 + 300
    assert [r.status for r in out.results] == ["sent", "deferred", "failed"]


def test_the_last_retry_that_fails_for_good_still_counts_earlier_deliveries() -> None:
    out = outcome_of(
        RecipientsRefusedError(UNKNOWN, refused={B: UNKNOWN}), B, attempt=2, delivered=1
    )
    assert (out.state, out.recipients) == (State.SENT, (B,))  # A got it in attempt 1


@pytest.mark.parametrize(
    ("error", "state", "code"),
    [
        (RecipientsRefusedError(LATER, refused={A: LATER, B: FULL}), State.DEFERRED, 451),
        (RecipientsRefusedError(UNKNOWN, refused={A: UNKNOWN, B: UNKNOWN}), State.FAILED, 550),
        (SenderRefusedError(Reply(421, "busy", "4.3.2", "MAIL")), State.DEFERRED, 421),
        (SenderRefusedError(Reply(553, "not allowed", "5.7.1", "MAIL")), State.FAILED, 553),
        (DataRefusedError(Reply(554, "spam", "5.7.1", ".")), State.FAILED, 554),
        (DataRefusedError(Reply(452, "no space", "4.3.1", ".")), State.DEFERRED, 452),
        (AuthenticationError(Reply(535, "bad credentials", "5.7.8", "AUTH")), State.DEFERRED, 535),
        (ServerDisconnected("connection lost"), State.DEFERRED, None),
        (SMTPTimeoutError("no reply in 30 s"), State.DEFERRED, None),
        (SMTPProtocolError("garbage"), State.DEFERRED, None),
        (DeliveryUnknownError("final reply lost"), State.DEFERRED, None),
        (StartTLSNotOfferedError("no STARTTLS"), State.DEFERRED, None),
        (SMTPUTF8NotSupportedError("no SMTPUTF8"), State.FAILED, None),
        (InvalidMessageError("cannot be rendered"), State.FAILED, None),
        (BadHeaderError("newline in a header"), State.FAILED, None),
        (NotSent("returned 0"), State.DEFERRED, None),
        (RuntimeError("a custom backend's bug"), State.DEFERRED, None),
        (ConnectionRefusedError(111, "refused"), State.DEFERRED, None),
    ],
)
def test_errors(error: BaseException, state: State, code: int | None) -> None:
    out = outcome_of(error, A, B)
    assert out.state is state
    assert out.results[0].code == code
    assert out.recipients == (A, B)
    assert (out.due_at is not None) == (state is State.DEFERRED)


def test_an_error_may_say_whether_it_is_transient() -> None:
    class ProviderError(Exception):
        def __init__(self, transient: bool) -> None:
            super().__init__("HTTP 400 from the provider")
            self.is_transient = transient

    assert outcome_of(ProviderError(False), A).state is State.FAILED
    assert outcome_of(ProviderError(True), A).state is State.DEFERRED


def test_delivery_unknown_is_deferred_and_says_so() -> None:
    out = outcome_of(DeliveryUnknownError("the connection dropped after the content"), A)
    assert out.state is State.DEFERRED
    assert "may have arrived" in out.results[0].text


def test_past_the_lifetime_it_expires() -> None:
    out = outcome_of(ServerDisconnected("down"), A, queued_at=T0 - 5 * 86400)
    assert (out.state, out.reason, out.event, out.due_at) == (
        State.FAILED,
        "expired",
        "expired",
        None,
    )
    assert out.results[0].status == "failed"
    assert "expired" in out.results[0].text


def test_the_retry_schedule_grows_with_attempts() -> None:
    dues = [outcome_of(ServerDisconnected("down"), A, attempt=n).due_at for n in (1, 2, 3, 4, 5, 9)]
    assert [d - (T0 + 10) for d in dues] == [300, 600, 1200, 2400, 4000, 4000]  # type: ignore[operator]


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("2.0.0 Ok: queued as 4Ydxyz12", "4Ydxyz12"),
        ("OK id=1tA2b3-000123-AB", "1tA2b3-000123-AB"),
        ("Ok 0100018c-abc-000000", "0100018c-abc-000000"),
        ("OK", None),
        ("OK: message 1 stored", None),
        ("Message accepted for delivery", None),
    ],
)
def test_relay_ids(text: str, found: str | None) -> None:
    assert relay_id(Reply(250, text)) == found
