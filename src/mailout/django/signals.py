"""Django signals sent by the queue's worker (``manage.py mailout queue worker``) after each
outcome is committed to the queue, through mailout's queue hooks (mailout.queue.hooks):

* ``message_sent``: accepted by the mailer (for at least one recipient; recipients refused
  for good are in ``failed``);
* ``message_deferred``: refused for now (or the mailer unreachable); retried at ``retry_at``;
* ``message_failed``: refused for good, cancelled by a ``pre_send`` hook, or expired
  (``reason="expired"``): it will not be tried again.

``sender`` is :class:`mailout.django.QueueBackend`'s class. Keyword arguments, for every
signal: ``id`` (the queue id), ``message_id`` (the ``Message-ID`` header), ``mailer``,
``from_email`` (the envelope sender), ``recipients`` (the envelope recipients of this
attempt), ``attempt`` (1 for the first), ``reply`` (one line: the reply or error that decided),
``replies`` (recipient -> ``"250 2.0.0 text"`` for each recipient of this attempt),
``metadata`` (what was enqueued with it), ``report`` (mailout's ``Report``: the claimed
message and the outcome, for anything else). ``message_sent`` adds ``delivered`` (the
recipients accepted) and ``failed`` (refused for good); ``message_deferred`` adds ``pending``
and ``retry_at`` (an aware UTC ``datetime``); ``message_failed`` adds ``pending`` (never
delivered), ``error`` (the same as ``reply``) and ``reason`` (``None``, ``"expired"``,
``"cancelled"`` or ``"corrupt"``).

Receivers run in the worker, after the commit (``send_robust``): an exception in one is logged
with its traceback, the other receivers still run, and the worker goes on (the mail's state is
stored already). Connect them in an ``AppConfig.ready()``. The worker runs these as queue hooks
after the project's own ``EMAIL_QUEUE_HOOKS`` (mailout.django.conf adds them).
"""

from __future__ import annotations

import datetime
import logging
from typing import Any, Final

from django.dispatch import Signal  # type: ignore[import-untyped]

from mailout.queue.models import Report

__all__ = ["message_deferred", "message_failed", "message_sent"]

log = logging.getLogger("mailout.queue")

message_sent: Final = Signal()
message_deferred: Final = Signal()
message_failed: Final = Signal()


def _reply(result: Any) -> str:
    code = "" if result.code is None else f"{result.code} "
    enhanced = f"{result.enhanced} " if result.enhanced else ""
    return f"{code}{enhanced}{result.text}".strip()


def _common(report: Report) -> dict[str, Any]:
    message, outcome = report.message, report.outcome
    return {
        "id": message.id,
        "message_id": message.message_id,
        "mailer": message.mailer,
        "from_email": message.sender,
        "recipients": message.recipients,
        "attempt": outcome.attempt,
        "reply": outcome.summary,
        "replies": {r.recipient: _reply(r) for r in outcome.results},
        "metadata": dict(message.metadata),
        "report": report,
    }


def _send(signal: Any, report: Report, **kwargs: Any) -> None:
    from mailout.django.queue_backend import QueueBackend

    for receiver, result in signal.send_robust(sender=QueueBackend, **kwargs, **_common(report)):
        if isinstance(result, Exception):
            log.error(
                "a receiver of mailout's %s signal (%s) raised for message %d; the worker goes on",
                report.outcome.event,
                getattr(receiver, "__qualname__", repr(receiver)),
                report.id,
                exc_info=result,
            )


def on_sent(report: Report) -> None:
    results = report.outcome.results
    _send(
        message_sent,
        report,
        delivered=tuple(r.recipient for r in results if r.status == "sent"),
        failed=tuple(r.recipient for r in results if r.status == "failed"),
    )


def on_deferred(report: Report) -> None:
    due = report.outcome.due_at
    _send(
        message_deferred,
        report,
        pending=report.outcome.recipients,
        retry_at=None if due is None else datetime.datetime.fromtimestamp(due, datetime.UTC),
    )


def on_failed(report: Report) -> None:
    _send(
        message_failed,
        report,
        pending=report.outcome.recipients,
        error=report.outcome.summary,
        reason=report.outcome.reason,
    )
