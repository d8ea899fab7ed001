"""Django models over mailout's queue tables, for reading them (Django's admin).

The tables belong to mailout's queue (``mailout/queue/sql/*/schema.sql``; created in the
project's database by migration ``0001_queue``): these models are unmanaged, so Django never
creates, alters or drops them. They are for reading. A message's state changes only through
mailout's own operations (``mailout.django.admin_ops``), the same named queries as ``mailout
queue hold/release/expire/retry``: an ORM ``save()`` or ``update()`` could change a message a
worker holds under its lease. Times are Unix seconds, as the queue stores them.
"""

from __future__ import annotations

import datetime as dt
import json

from django.db import models  # type: ignore[import-untyped]

from mailout.queue.models import Priority, State

__all__ = ["QueueEvent", "QueueWorker", "QueuedBody", "QueuedMessage", "timestamp"]

STATES = [(str(state), str(state)) for state in State]
PRIORITIES = [(int(p), p.name.lower()) for p in Priority]


def timestamp(seconds: float | None) -> dt.datetime | None:
    """The queue's Unix seconds as an aware datetime (None stays None)."""
    if seconds is None:
        return None
    return dt.datetime.fromtimestamp(seconds, tz=dt.UTC)


class QueuedMessage(models.Model):  # type: ignore[misc]
    """One message of the queue (``mailout_queue_message``): its envelope and its state."""

    id = models.BigIntegerField(primary_key=True)
    idempotency_key = models.TextField(null=True)
    state = models.TextField(choices=STATES)
    mailer = models.TextField()
    priority = models.SmallIntegerField(choices=PRIORITIES)
    sender = models.TextField()
    #: JSON arrays of addresses: the envelope as enqueued, and those not delivered yet.
    recipients = models.TextField()
    pending = models.TextField()
    domain = models.TextField()
    message_id = models.TextField()
    subject = models.TextField()
    size = models.IntegerField()
    metadata = models.TextField()
    created_at = models.FloatField()
    queued_at = models.FloatField()
    due_at = models.FloatField()
    updated_at = models.FloatField()
    attempts = models.IntegerField()
    delivered = models.IntegerField()
    lease_owner = models.TextField(null=True)
    lease_until = models.FloatField(null=True)
    last_reply = models.TextField(null=True)
    reason = models.TextField(null=True)

    class Meta:
        managed = False
        db_table = "mailout_queue_message"
        verbose_name = "queued message"
        # No add or change: mail enters the queue by being sent, and changes state through
        # the actions below, each its own permission; delete is Django's own.
        default_permissions = ("view", "delete")
        permissions = [
            ("retry_queuedmessage", "Can retry queued mail"),
            ("hold_queuedmessage", "Can hold queued mail"),
            ("release_queuedmessage", "Can release held mail"),
            ("expire_queuedmessage", "Can expire queued mail"),
        ]

    def __str__(self) -> str:
        return f"#{self.id} {self.subject or '(no subject)'}"

    def recipient_list(self) -> list[str]:
        return _addresses(self.recipients)

    def pending_list(self) -> list[str]:
        return _addresses(self.pending)

    def user_metadata(self) -> dict[str, object]:
        try:
            user = json.loads(self.metadata).get("user", {})
        except (TypeError, ValueError, AttributeError):
            return {"unreadable": str(self.metadata)[:200]}
        return user if isinstance(user, dict) else {"user": user}


class QueuedBody(models.Model):  # type: ignore[misc]
    """A message's bytes as rendered at enqueue (``mailout_queue_body``); gone after sending
    when ``EMAIL_QUEUE_KEEP_BODY_AFTER_SEND`` is off."""

    message = models.OneToOneField(
        QueuedMessage,
        primary_key=True,
        db_column="message",
        db_constraint=False,
        on_delete=models.DO_NOTHING,
        related_name="body",
    )
    data = models.BinaryField()

    class Meta:
        managed = False
        db_table = "mailout_queue_body"
        default_permissions = ()


class QueueEvent(models.Model):  # type: ignore[misc]
    """One attempt for one recipient (SMTP code, enhanced status, text, the relay's queue id),
    or one operation on the message (held, released, retried, expired, lease-expired)."""

    id = models.BigIntegerField(primary_key=True)
    message = models.ForeignKey(
        QueuedMessage,
        db_column="message",
        db_constraint=False,
        on_delete=models.DO_NOTHING,
        related_name="events",
    )
    at = models.FloatField()
    attempt = models.IntegerField()
    kind = models.TextField()
    recipient = models.TextField(null=True)
    code = models.IntegerField(null=True)
    enhanced = models.TextField(null=True)
    text = models.TextField()
    relay_id = models.TextField(null=True)

    class Meta:
        managed = False
        db_table = "mailout_queue_event"
        default_permissions = ()


class QueueWorker(models.Model):  # type: ignore[misc]
    """A live worker, as its last heartbeat left it (``mailout_queue_worker``)."""

    id = models.TextField(primary_key=True)
    host = models.TextField()
    pid = models.IntegerField()
    started_at = models.FloatField()
    seen_at = models.FloatField()
    in_flight = models.IntegerField()
    sent = models.IntegerField()
    deferred = models.IntegerField()
    failed = models.IntegerField()

    class Meta:
        managed = False
        db_table = "mailout_queue_worker"
        verbose_name = "queue worker"
        default_permissions = ("view",)

    def __str__(self) -> str:
        return f"{self.host}:{self.pid}"


def _addresses(text: str) -> list[str]:
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return [str(text)]
    return [str(a) for a in value] if isinstance(value, list) else [str(value)]
