"""Rows: a new message as the insert takes it, stored rows read back into values, and an
outcome turned into event rows.

A row that cannot be read back (JSON that does not parse, a missing body) becomes a claimed
message marked ``corrupt``: the worker fails that one message and goes on with the rest.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from mailout._canonical import canonical, is_canonical
from mailout.queue.limits import Bucket
from mailout.queue.models import (
    ClaimedMessage,
    Event,
    MessageSummary,
    NewMessage,
    Outcome,
    Priority,
    State,
    WorkerInfo,
)

__all__ = [
    "MessageRows",
    "bucket_params",
    "claimed_from_row",
    "events_for",
    "json_strings",
    "stored_metadata",
    "summary_from_row",
    "worker_params",
]

log = logging.getLogger("mailout.queue")


def stored_metadata(m: NewMessage, crlf: bool | None = None) -> dict[str, Any]:
    """The metadata column: the user's fields and what delivery needs to know of the body.
    ``crlf`` (``is_canonical(m.data)`` unless given): the body was in SMTP's canonical form
    when stored (mailout._canonical), so it is read back as such and not scanned again when
    sent; rows without it (an older mailout's) are scanned."""
    return {
        "smtputf8": m.smtputf8,
        "eight_bit": m.eight_bit,
        "crlf": is_canonical(m.data) if crlf is None else crlf,
        "user": dict(m.metadata),
    }


def claimed_from_row(row: Sequence[Any], data: object, *, where: str) -> ClaimedMessage:
    """(id, attempts, mailer, priority, sender, recipients, message_id, created_at, queued_at,
    delivered, metadata) and the body -> a ClaimedMessage, or one marked corrupt."""
    id_, attempt, mailer, priority, sender, recipients, message_id = row[:7]
    created_at, queued_at, delivered, metadata = row[7:11]
    problem = None
    try:
        rcpts = json.loads(recipients)
        meta = json.loads(metadata)
        if not isinstance(rcpts, list) or not rcpts or not all(isinstance(r, str) for r in rcpts):
            problem = "its recipients are not a list of addresses"
        elif not isinstance(meta, dict):
            problem = "its metadata is not a JSON object"
        elif not isinstance(data, bytes) or not data:
            problem = "its message body is missing"
    except (TypeError, ValueError) as exc:
        problem = f"a stored field is not valid JSON ({exc})"
    if problem is not None:
        log.error("queue database %s: message %s cannot be read back: %s", where, id_, problem)
        return ClaimedMessage(
            id=int(id_),
            attempt=int(attempt),
            mailer=str(mailer),
            priority=_priority(priority),
            sender=str(sender),
            recipients=(),
            data=b"",
            message_id=str(message_id),
            created_at=float(created_at),
            queued_at=float(queued_at),
            corrupt=f"message {id_} in {where} cannot be read back: {problem}",
        )
    assert isinstance(data, bytes)  # checked above: a row without bytes is corrupt
    if meta.get("crlf") is True:
        data = canonical(data)
    return ClaimedMessage(
        id=int(id_),
        attempt=int(attempt),
        mailer=str(mailer),
        priority=_priority(priority),
        sender=str(sender),
        recipients=tuple(rcpts),
        data=data,
        message_id=str(message_id),
        created_at=float(created_at),
        queued_at=float(queued_at),
        delivered=int(delivered),
        smtputf8=bool(meta.get("smtputf8")),
        eight_bit=bool(meta.get("eight_bit")),
        metadata=meta.get("user") or {},
    )


def _priority(value: object) -> Priority:
    try:
        return Priority(int(value))  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return Priority.NORMAL


def _addresses(text: object) -> tuple[str, ...]:
    try:
        return tuple(str(r) for r in json.loads(text))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return ("(unreadable)",)


def summary_from_row(row: Sequence[Any]) -> MessageSummary:
    """(id, state, mailer, priority, sender, recipients, pending, subject, message_id, size,
    created_at, queued_at, due_at, updated_at, attempts, last_reply, reason, key) -> a summary."""
    return MessageSummary(
        id=int(row[0]),
        state=State(row[1]),
        mailer=str(row[2]),
        priority=_priority(row[3]),
        sender=str(row[4]),
        recipients=_addresses(row[5]),
        pending=_addresses(row[6]),
        subject=str(row[7]),
        message_id=str(row[8]),
        size=int(row[9]),
        created_at=float(row[10]),
        queued_at=float(row[11]),
        due_at=float(row[12]),
        updated_at=float(row[13]),
        attempts=int(row[14]),
        last_reply=row[15],
        reason=row[16],
        key=row[17],
    )


def events_for(outcome: Outcome, now: float) -> list[Event]:
    """One event per recipient result; one for the message when there is none (cancelled,
    corrupt). A recipient that failed because the message expired is an ``expired`` event."""
    if not outcome.results:
        return [Event(outcome.id, now, outcome.attempt, outcome.event, text=outcome.summary)]
    events = []
    for result in outcome.results:
        kind = str(result.status)
        if kind == "failed" and outcome.reason in ("expired", "cancelled"):
            kind = outcome.reason
        events.append(
            Event(
                outcome.id,
                now,
                outcome.attempt,
                kind,
                result.recipient,
                result.code,
                result.enhanced,
                result.text,
                result.relay_id,
            )
        )
    return events


class MessageRows:
    """A message's row as the insert query takes it; JSON made cheaply for the usual values."""

    __slots__ = ("_meta", "now")

    def __init__(self, now: float) -> None:
        self.now = now
        self._meta: dict[tuple[bool, bool, bool, int], tuple[Mapping[str, Any], str]] = {}

    def message(self, m: NewMessage) -> dict[str, Any]:
        now = self.now
        recipients = json_strings(m.recipients)
        return {
            "key": m.key,
            "mailer": m.mailer,
            "priority": int(m.priority),
            "sender": m.sender,
            "recipients": recipients,
            "domain": m.domain,
            "message_id": m.message_id,
            "subject": m.subject,
            "size": len(m.data),
            "metadata": self._metadata(m),
            "now": now,
            "due_at": now if m.not_before is None else m.not_before,
        }

    def _metadata(self, m: NewMessage) -> str:
        # A batch's messages share their user metadata (one mapping): its JSON is made once.
        # The entry holds the mapping, so its id cannot be reused while the batch is stored.
        crlf = is_canonical(m.data)
        key = (m.smtputf8, m.eight_bit, crlf, id(m.metadata))
        found = self._meta.get(key)
        if found is None or found[0] is not m.metadata:
            found = self._meta[key] = (m.metadata, json.dumps(stored_metadata(m, crlf)))
        return found[1]


def json_strings(values: Sequence[str]) -> str:
    """``json.dumps(values)`` for a list of strings, without the encoder for plain ones."""
    if not values:
        return "[]"
    for value in values:
        if not (value.isascii() and value.isprintable()) or '"' in value or "\\" in value:
            return json.dumps(values)
    return '["' + '", "'.join(values) + '"]'


def bucket_params(bucket: Bucket) -> dict[str, Any]:
    """A rate bucket as the ``save_bucket`` query's parameters (both SQL storages)."""
    return {
        "tokens": bucket.tokens,
        "updated_at": bucket.updated_at,
        "day": bucket.day,
        "day_count": bucket.day_count,
    }


def worker_params(info: WorkerInfo) -> dict[str, Any]:
    """A worker's registry entry as the ``save_worker`` query's parameters."""
    return {name: getattr(info, name) for name in WorkerInfo.__dataclass_fields__}
