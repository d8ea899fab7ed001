"""The values the queue stores and hands around: new and claimed messages, outcomes, stats."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any, Final, Literal

from mailout.exceptions import InvalidMessageError
from mailout.smtp import Envelope

__all__ = [
    "ALL",
    "LIVE",
    "WAITING",
    "ClaimedMessage",
    "Event",
    "MessageDetail",
    "MessageSummary",
    "NewMessage",
    "Outcome",
    "Priority",
    "QueueStats",
    "RecipientResult",
    "Report",
    "Selection",
    "State",
    "WorkerInfo",
]


class State(StrEnum):
    """Where a message is in its life. ``failed`` includes messages that expired."""

    QUEUED = "queued"  # never attempted; due at its not_before time (or at once)
    DEFERRED = "deferred"  # attempted, refused for now: due again at due_at
    SENDING = "sending"  # claimed by a worker under a lease
    SENT = "sent"  # accepted for every recipient not refused for good
    FAILED = "failed"  # refused for good, expired, cancelled, or unreadable
    HELD = "held"  # put aside by an operator until released


WAITING: Final = (State.QUEUED, State.DEFERRED)
#: Mail not done yet: what ``status`` counts per mailer.
LIVE: Final = (State.QUEUED, State.DEFERRED, State.SENDING, State.HELD)

#: Every message (for hold/release/expire/retry), as Postfix's ``postsuper`` writes it.
ALL: Final = "ALL"
Selection = Sequence[int] | Literal["ALL"]


class Priority(IntEnum):
    """Within new mail and within retries, higher priority goes first."""

    HIGH = 0
    NORMAL = 1
    LOW = 2

    @classmethod
    def parse(cls, value: object, *, what: str = "priority") -> Priority:
        if isinstance(value, Priority):
            return value
        if isinstance(value, str) and value.strip().upper() in cls.__members__:
            return cls[value.strip().upper()]
        raise InvalidMessageError(f"{what}: expected 'high', 'normal' or 'low', got {value!r}")


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A rendered message, ready to be stored: the bytes, the envelope and what lists show."""

    sender: str
    recipients: tuple[str, ...]
    data: bytes
    message_id: str
    subject: str
    mailer: str
    priority: Priority = Priority.NORMAL
    not_before: float | None = None
    key: str | None = None
    smtputf8: bool = False
    eight_bit: bool = False
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def domain(self) -> str:
        """The destination domain: that of the first recipient (what the domain cap counts)."""
        return domain_of(self.recipients[0])


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower()


@dataclass(frozen=True, slots=True)
class ClaimedMessage:
    """A message a worker holds under a lease, with what it needs to deliver it as stored.

    ``corrupt`` is set (and the other fields may be empty) when the stored row could not be
    read back; the worker fails that message instead of sending anything.
    """

    id: int
    attempt: int  # this attempt's number: 1 for the first
    mailer: str
    priority: Priority
    sender: str
    recipients: tuple[str, ...]  # still to be delivered
    data: bytes
    message_id: str
    created_at: float
    queued_at: float  # when the lifetime started: enqueue, or an operator's retry
    delivered: int = 0  # recipients accepted by earlier attempts
    smtputf8: bool = False
    eight_bit: bool = False
    metadata: Mapping[str, Any] = field(default_factory=dict)
    corrupt: str | None = None

    @property
    def domain(self) -> str:
        return domain_of(self.recipients[0]) if self.recipients else ""

    def envelope(self) -> Envelope:
        return Envelope(self.sender, self.recipients, self.smtputf8, self.eight_bit)


@dataclass(frozen=True, slots=True)
class RecipientResult:
    """What happened to one recipient in one attempt: the server's reply, or the error."""

    recipient: str
    status: Literal["sent", "deferred", "failed"]
    code: int | None = None
    enhanced: str | None = None
    text: str = ""
    relay_id: str | None = None  # the relay's queue id, from its 250 reply


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt did to one message, as the store records it.

    ``recipients`` are those still to be delivered (``deferred``) or never delivered
    (``failed``); ``reason`` is ``"expired"``, ``"cancelled"`` or ``"corrupt"`` when it is not
    simply the replies; ``summary`` is one line: the reply or error that decided.
    """

    id: int
    attempt: int
    state: State
    results: tuple[RecipientResult, ...] = ()
    recipients: tuple[str, ...] = ()
    due_at: float | None = None
    delivered: int = 0  # recipients accepted in this attempt
    reason: str | None = None
    summary: str = ""

    @property
    def event(self) -> str:
        """The hook and log event: sent, deferred, failed or expired."""
        return "expired" if self.reason == "expired" else str(self.state)


@dataclass(frozen=True, slots=True)
class Report:
    """Given to the sent/deferred/failed/expired hooks, after the outcome was committed."""

    message: ClaimedMessage
    outcome: Outcome

    @property
    def id(self) -> int:
        return self.message.id

    @property
    def message_id(self) -> str:
        return self.message.message_id


@dataclass(frozen=True, slots=True)
class Event:
    """One line of a message's history: a recipient's reply in an attempt, or an operation."""

    message: int
    at: float
    attempt: int
    kind: str  # sent, deferred, failed, expired, cancelled, held, released, retried, lease-expired
    recipient: str | None = None
    code: int | None = None
    enhanced: str | None = None
    text: str = ""
    relay_id: str | None = None


@dataclass(frozen=True, slots=True)
class MessageSummary:
    """A message as ``list`` and ``status`` show it (no body)."""

    id: int
    state: State
    mailer: str
    priority: Priority
    sender: str
    recipients: tuple[str, ...]  # the envelope, as enqueued
    pending: tuple[str, ...]  # still to be delivered; after a final outcome, never delivered
    subject: str
    message_id: str
    size: int
    created_at: float
    queued_at: float
    due_at: float
    updated_at: float
    attempts: int
    last_reply: str | None = None
    reason: str | None = None
    key: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "state": str(self.state),
            "mailer": self.mailer,
            "priority": self.priority.name.lower(),
            "sender": self.sender,
            "recipients": list(self.recipients),
            "pending": list(self.pending),
            "subject": self.subject,
            "message_id": self.message_id,
            "size": self.size,
            "created_at": iso(self.created_at),
            "due_at": iso(self.due_at),
            "updated_at": iso(self.updated_at),
            "attempts": self.attempts,
            "last_reply": self.last_reply,
            "reason": self.reason,
            "key": self.key,
        }


@dataclass(frozen=True, slots=True)
class MessageDetail:
    """Everything about one message: ``show ID``."""

    summary: MessageSummary
    metadata: Mapping[str, Any]
    data: bytes | None  # None once dropped (keep_body_after_send off)
    events: tuple[Event, ...]
    lease_owner: str | None = None
    lease_until: float | None = None


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """A worker as it registers itself and reports with each heartbeat."""

    id: str
    host: str
    pid: int
    started_at: float
    seen_at: float
    in_flight: int = 0
    sent: int = 0
    deferred: int = 0
    failed: int = 0


@dataclass(frozen=True, slots=True)
class QueueStats:
    """``status``: counts by state and what tells whether the queue is being drained."""

    counts: Mapping[State, int]
    oldest_due: float | None  # the earliest due time of waiting mail (None: nothing waits)
    next_retry: float | None  # the earliest retry not yet due
    recent_failures: tuple[MessageSummary, ...]
    workers: tuple[WorkerInfo, ...]
    # Mail not yet done (queued, deferred, sending, held) per mailer: {mailer: {state: n}}.
    by_mailer: Mapping[str, Mapping[State, int]] = field(default_factory=dict)

    def as_json(self, now: float) -> dict[str, Any]:
        out: dict[str, Any] = {str(state): self.counts.get(state, 0) for state in State}
        out["total"] = sum(self.counts.values())
        out["oldest_due"] = iso(self.oldest_due)
        out["oldest_due_seconds"] = (
            None if self.oldest_due is None else round(max(0.0, now - self.oldest_due), 3)
        )
        out["next_retry"] = iso(self.next_retry)
        out["recent_failures"] = [m.as_json() for m in self.recent_failures]
        out["workers"] = [
            {
                "id": w.id,
                "host": w.host,
                "pid": w.pid,
                "started_at": iso(w.started_at),
                "seen_seconds_ago": round(max(0.0, now - w.seen_at), 3),
                "in_flight": w.in_flight,
                "sent": w.sent,
                "deferred": w.deferred,
                "failed": w.failed,
            }
            for w in self.workers
        ]
        out["mailers"] = {
            mailer: {str(state): n for state, n in counts.items()}
            for mailer, counts in sorted(self.by_mailer.items())
        }
        return out


def iso(timestamp: float | None) -> str | None:
    """A Unix time as ISO 8601 in UTC (what JSON output and logs show)."""
    if timestamp is None:
        return None
    import datetime

    moment = datetime.datetime.fromtimestamp(timestamp, datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
