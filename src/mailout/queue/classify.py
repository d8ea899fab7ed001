"""From what a mailer answered to what the queue records, per message and per recipient.

RFC 5321 §4.2.1 splits refusals in two: ``4yz`` is transient (try again later), ``5yz``
permanent. So, per recipient and per message:

* accepted (``2yz``) → sent, with the reply and the relay's queue id;
* ``4yz``, a lost or refused connection, a timeout, a reply lost after the content was sent
  (``DeliveryUnknownError``: sent again later with the same Message-ID), TLS or login trouble
  (a configuration to fix, not a reason to bounce mail) → deferred: retried by the policy's
  backoff, only for the recipients that were refused for now;
* ``5yz``, an address or message the mailer cannot take, a relay without SMTPUTF8 for a
  message that needs it → failed at once;
* deferred past the policy's lifetime → failed, as expired.

An unknown exception from a custom backend defers (it may be a passing outage; the lifetime
bounds it); an exception with an ``is_transient`` attribute says itself which it is.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from typing import Final, Literal

from mailout.exceptions import (
    AuthenticationError,
    BadHeaderError,
    DeliveryUnknownError,
    InvalidAddressError,
    InvalidMessageError,
    MessageTypeError,
    RecipientsRefusedError,
    ReplyError,
    SMTPSecurityError,
    SMTPUTF8NotSupportedError,
)
from mailout.queue.models import ClaimedMessage, Outcome, RecipientResult, State
from mailout.queue.policy import RetryPolicy
from mailout.queue.transport import Result
from mailout.smtp import Reply, SendResult

__all__ = ["describe", "failed", "judge", "per_recipient", "relay_id"]

Status = Literal["sent", "deferred", "failed"]
_PERMANENT_INPUT: Final = (
    BadHeaderError,
    InvalidAddressError,
    InvalidMessageError,
    MessageTypeError,
    SMTPUTF8NotSupportedError,
)
# Postfix "Ok: queued as 4Ydxyz", Exim "OK id=1tA2b3-000123-AB", others "OK <id>": tried in
# this order, so the words of one form are never taken for the id of another.
_RELAY_IDS: Final = (
    re.compile(r"queued as[: ]+<?([^\s;,>]+)", re.IGNORECASE),
    re.compile(r"\bid=<?([^\s;,>]+)", re.IGNORECASE),
    re.compile(r"^ok:?\s+<?([A-Za-z0-9][^\s;,>]*)>?\s*$", re.IGNORECASE),  # the whole rest
)


def relay_id(reply: Reply) -> str | None:
    """The queue id a relay gave in its 250 reply to the message, if it gave one."""
    for pattern in _RELAY_IDS:
        found = pattern.search(reply.text)
        if found:
            return found[1]
    return None


def _from_reply(recipient: str, reply: Reply, status: Status | None = None) -> RecipientResult:
    if status is None:
        status = "sent" if reply.is_positive else "deferred" if reply.is_transient else "failed"
    return RecipientResult(
        recipient,
        status,
        reply.code,
        reply.enhanced,
        reply.text,
        relay_id(reply) if status == "sent" else None,
    )


def _error_status(error: BaseException) -> Status:
    if isinstance(error, DeliveryUnknownError | AuthenticationError | SMTPSecurityError):
        return "deferred"
    if isinstance(error, ReplyError):
        return "deferred" if error.is_transient else "failed"
    transient = getattr(error, "is_transient", None)
    if isinstance(transient, bool):
        return "deferred" if transient else "failed"
    if isinstance(error, _PERMANENT_INPUT):
        return "failed"
    return "deferred"


def describe(error: BaseException) -> str:
    """One line naming what went wrong (never a traceback)."""
    if isinstance(error, DeliveryUnknownError):
        return f"delivery unknown, the message may have arrived: {error}"
    text = str(error) or "no detail"
    return f"{type(error).__name__}: {text}"


def per_recipient(message: ClaimedMessage, result: Result) -> list[RecipientResult]:
    """Each recipient's result in this attempt."""
    recipients = message.recipients
    if isinstance(result, SendResult):
        out = []
        for r in recipients:
            if r in result.accepted:
                out.append(_from_reply(r, result.reply, "sent"))
            elif r in result.refused:
                out.append(_from_reply(r, result.refused[r]))
            else:  # the server never answered for it: try again
                out.append(RecipientResult(r, "deferred", text="no reply for this recipient"))
        return out
    if isinstance(result, RecipientsRefusedError) and result.refused:
        return [
            _from_reply(r, result.refused[r])
            if r in result.refused
            else RecipientResult(r, "deferred", text="no reply for this recipient")
            for r in recipients
        ]
    status = _error_status(result)
    if isinstance(result, ReplyError):
        reply = result.reply
        return [_from_reply(r, reply, status) for r in recipients]
    return [RecipientResult(r, status, text=describe(result)) for r in recipients]


def judge(
    message: ClaimedMessage,
    result: Result,
    *,
    policy: RetryPolicy,
    now: float,
    draw: float,
    extra: Sequence[RecipientResult] = (),
) -> Outcome:
    """The outcome of one attempt. ``extra``: recipients already decided before sending (a
    pre_send hook removed them)."""
    results = per_recipient(message, result) + list(extra)
    accepted = sum(1 for r in results if r.status == "sent")
    pending = tuple(r.recipient for r in results if r.status == "deferred")
    refused = tuple(r.recipient for r in results if r.status == "failed")
    summary = _summary(result)
    if pending:
        due = policy.next_attempt(message.attempt, now=now, queued_at=message.queued_at, draw=draw)
        if due is not None:
            return Outcome(
                message.id,
                message.attempt,
                State.DEFERRED,
                tuple(results),
                pending,
                due_at=due,
                delivered=accepted,
                summary=summary,
            )
        # Past its lifetime: what is still refused for now fails, as expired.
        results = [
            replace(r, status="failed", text=f"{r.text} (expired after {policy.lifetime:g} s)")
            if r.status == "deferred"
            else r
            for r in results
        ]
        state = State.SENT if message.delivered + accepted else State.FAILED
        return Outcome(
            message.id,
            message.attempt,
            state,
            tuple(results),
            pending + refused,
            delivered=accepted,
            reason="expired",
            summary=f"expired: {summary}",
        )
    state = State.SENT if message.delivered + accepted else State.FAILED
    return Outcome(
        message.id,
        message.attempt,
        state,
        tuple(results),
        refused,
        delivered=accepted,
        summary=summary,
    )


def _summary(result: Result) -> str:
    if isinstance(result, SendResult):
        text = str(result.reply)
        if result.refused:
            refused = "; ".join(f"{r}: {reply}" for r, reply in result.refused.items())
            text += f" (refused: {refused})"
        return text
    if isinstance(result, ReplyError):
        return f"{type(result).__name__}: {result.reply}"
    return describe(result)


def failed(message: ClaimedMessage, reason: str, text: str) -> Outcome:
    """An outcome reached without sending: cancelled by a hook, or a row that cannot be read."""
    results = tuple(RecipientResult(r, "failed", text=text) for r in message.recipients)
    return Outcome(
        message.id,
        message.attempt,
        State.FAILED,
        results,
        message.recipients,
        reason=reason,
        summary=text,
    )
