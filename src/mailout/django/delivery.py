"""Queued mail delivered by any Django email backend: Django's own (smtp, console, file,
locmem), another package's (an ESP's API backend), or a project's.

The worker hands each stored message to the backend's ``send_messages()`` as a
:class:`StoredMessage`: a Django ``EmailMultiAlternatives`` read back from the stored bytes.

* Backends that write the message (Django's smtp, console and file backends, and any that
  call ``message()`` and serialise it) send **the stored bytes unchanged**: ``message()``
  returns the parsed message whose ``as_bytes()``/``as_string()`` give back the bytes stored
  at enqueue (CRLF line ends, or LF where the caller asks for them), so ``Message-ID``,
  ``Date``, the MIME tree and every header are those of every other attempt. The envelope is
  the stored one: ``from_email`` is the envelope sender (the ``From`` header stays as stored,
  in the bytes), and ``recipients()`` the recipients still to be delivered.
* Backends that read fields (ESP APIs) find ``subject``, ``body``, the HTML alternative,
  ``to``, ``cc``, ``bcc`` (the envelope recipients in neither), ``reply_to``, the attachments
  (file name, content, MIME type) and every other header in ``extra_headers`` (``Message-ID``,
  ``Date``, ``List-Unsubscribe``, ``X-…``), read back from the bytes. The limit: what fields
  cannot carry is lost there (an inline image's ``Content-ID`` and the MIME nesting, the
  ``From`` display name when the envelope sender differs from it, parts beyond text, HTML and
  attachments), as it would be for any message those APIs take.

Every send is one message per ``send_messages()`` call, so each gets its own outcome; an
exception defers it (one with ``is_transient = False``, or a 5xx SMTP error, fails it; see
mailout.queue.classify), and a return of 0 defers it.
"""

from __future__ import annotations

import email
import email.message
import email.policy
from email.parser import BytesParser
from typing import Any, Final

from django.core.mail import EmailMultiAlternatives  # type: ignore[import-untyped]
from django.core.mail.backends.base import (  # type: ignore[import-untyped]
    BaseEmailBackend as DjangoBaseEmailBackend,
)

from mailout.backends.base import BaseEmailBackend
from mailout.queue.models import ClaimedMessage
from mailout.queue.stored import QueuedMessage
from mailout.queue.transport import BackendTransport, Transport

__all__ = ["DjangoTransport", "StoredMessage", "transport_for_django"]

# Headers Django writes from the message's fields: not repeated in extra_headers.
_FROM_FIELDS: Final = frozenset(
    {
        "subject",
        "from",
        "to",
        "cc",
        "bcc",
        "reply-to",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
        "content-disposition",
    }
)


class _StoredMIME(email.message.EmailMessage):
    """A parsed message whose serialisation is the stored bytes (the root only)."""

    _wire: bytes | None = None

    def as_bytes(self, unixfrom: bool = False, policy: Any = None, **kwargs: Any) -> bytes:
        if self._wire is None:
            return super().as_bytes(unixfrom, policy, **kwargs)
        linesep = kwargs.get("linesep") or (policy or self.policy).linesep
        return self._wire if linesep == "\r\n" else self._wire.replace(b"\r\n", linesep.encode())

    def __bytes__(self) -> bytes:
        return self.as_bytes()

    def as_string(
        self, unixfrom: bool = False, maxheaderlen: Any = None, policy: Any = None, **kwargs: Any
    ) -> str:
        if self._wire is None:
            return super().as_string(unixfrom, maxheaderlen, policy, **kwargs)
        return self.as_bytes(policy=policy, **kwargs).decode("utf-8", "surrogateescape")


class StoredMessage(EmailMultiAlternatives):  # type: ignore[misc]
    """A Django message read back from the queue (see the module docstring); ``queue_id`` is
    its id in the queue, ``wire_bytes`` the stored bytes, ``envelope`` the stored envelope."""

    def __init__(self, claimed: ClaimedMessage) -> None:
        queued = QueuedMessage(claimed)  # mailout's reading of the bytes, fields by field
        parsed = queued.message()
        headers = {
            name: str(value) for name, value in parsed.items() if name.lower() not in _FROM_FIELDS
        }
        from_header = queued.from_email
        sender_is_from = from_header.rpartition("<")[2].rstrip(">").strip().lower() == (
            claimed.sender.lower()
        )
        super().__init__(
            subject=queued.subject,
            body=queued.body,
            from_email=from_header if sender_is_from and from_header else claimed.sender,
            to=queued.to,
            cc=queued.cc,
            bcc=queued.bcc,
            reply_to=queued.reply_to,
            headers=headers if sender_is_from else {**headers, "From": from_header},
        )
        for content, mimetype in queued.alternatives:
            self.attach_alternative(content, mimetype)
        for part in queued.attachments:
            self.attach(part.get_filename(), part.get_content(), part.get_content_type())
        self.wire_bytes = claimed.data
        self.envelope = claimed.envelope()
        self.queue_id = claimed.id

    def recipients(self) -> list[str]:
        return list(self.envelope.recipients)

    def message(self, *args: Any, policy: Any = None, **kwargs: Any) -> email.message.Message:
        parsed: _StoredMIME = BytesParser(
            _class=_StoredMIME, policy=policy or email.policy.default
        ).parsebytes(self.wire_bytes)
        parsed._wire = self.wire_bytes
        return parsed

    def __repr__(self) -> str:
        return f"<StoredMessage {self.queue_id} subject={self.subject!r}>"


class DjangoTransport(BackendTransport):
    """A Django backend (not mailout's): one :class:`StoredMessage` per ``send_messages()``."""

    def wrap(self, message: ClaimedMessage) -> Any:
        return StoredMessage(message)


def transport_for_django(backend: Any) -> Transport | None:
    """The queue's transport for a Django email backend; None for mailout's own backends
    (mailout.django.EmailBackend included: its pool takes the batch) and non-Django ones."""
    if isinstance(backend, BaseEmailBackend) or not isinstance(backend, DjangoBaseEmailBackend):
        return None
    return DjangoTransport(backend)
