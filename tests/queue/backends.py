"""Custom backends and hooks for the worker's tests, importable by dotted path as users'."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any, ClassVar

from mailout.backends.base import BaseEmailBackend
from mailout.exceptions import DeliveryUnknownError, InvalidMessageError
from mailout.message import EmailMessage
from mailout.queue.models import ClaimedMessage, Report


class FieldsBackend(BaseEmailBackend):
    """Reads messages the way an ESP backend does: fields, not bytes."""

    received: ClassVar[list[dict[str, Any]]] = []

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        for m in email_messages:
            self.received.append(
                {
                    "subject": m.subject,
                    "from": m.from_email,
                    "to": list(m.to),
                    "cc": list(m.cc),
                    "bcc": list(m.bcc),
                    "body": m.body,
                    "html": [c for c, t in getattr(m, "alternatives", []) if t == "text/html"],
                    "headers": dict(m.extra_headers),
                    "attachments": [a.get_filename() for a in m.attachments],
                    "recipients": m.recipients(),
                    "parsed_subject": m.message()["Subject"],
                }
            )
        return len(email_messages)


class FlakyBackend(BaseEmailBackend):
    """Loses the final reply of the first message it sends, then works."""

    calls: ClassVar[list[bytes]] = []

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        for m in email_messages:
            self.calls.append(m.wire_bytes)  # type: ignore[attr-defined]
            if len(self.calls) == 1:
                raise DeliveryUnknownError("the connection dropped after the content was sent")
        return len(email_messages)


class RefusingBackend(BaseEmailBackend):
    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        raise InvalidMessageError("this provider cannot take this message")


class SilentBackend(BaseEmailBackend):
    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        return 0


class SlowBackend(BaseEmailBackend):
    """Takes 0.2 s a call and counts how many calls run at once, per recipient domain
    (``most``) and in all (``most_at_once``); ``reset()`` starts the counts again."""

    lock = threading.Lock()
    running: ClassVar[Counter[str]] = Counter()
    most: ClassVar[Counter[str]] = Counter()
    most_at_once: ClassVar[int] = 0

    @classmethod
    def reset(cls) -> None:
        with cls.lock:
            cls.most.clear()
            cls.most_at_once = 0

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        domains = {m.recipients()[0].rpartition("@")[2] for m in email_messages}
        cls = type(self)
        with self.lock:
            for d in domains:
                self.running[d] += 1
                self.most[d] = max(self.most[d], self.running[d])
            cls.most_at_once = max(cls.most_at_once, sum(self.running.values()))
        time.sleep(0.2)
        with self.lock:
            for d in domains:
                self.running[d] -= 1
        return len(email_messages)


# -- hooks -------------------------------------------------------------------------------------

seen: list[tuple[str, int]] = []


def suppress(message: ClaimedMessage) -> ClaimedMessage | None:
    """A suppression list: nobody at blocked.example gets mail."""
    import dataclasses

    kept = tuple(r for r in message.recipients if not r.endswith("@blocked.example"))
    return dataclasses.replace(message, recipients=kept)


def on_sent(report: Report) -> None:
    seen.append(("sent", report.id))


def on_failed(report: Report) -> None:
    seen.append(("failed", report.id))


def fill_disk(message: ClaimedMessage) -> ClaimedMessage:
    """As if the disk filled up while a batch is out: no file may be written from now on.
    (The process must ignore SIGXFSZ, so that such a write fails instead of killing it.)"""
    import resource

    resource.setrlimit(resource.RLIMIT_FSIZE, (1, 1))
    return message
