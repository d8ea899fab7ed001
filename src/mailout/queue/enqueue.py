"""Putting messages in the queue: render once, store bytes + envelope + JSON, commit, return.

``enqueue(messages, priority=..., not_before=..., key=..., mailer=...)`` is the API behind the
queue backend. Each message is rendered by the fast serialiser exactly once, here: its bytes,
and so its ``Message-ID`` and ``Date``, never change afterwards, whatever attempt sends them.
A batch is one transaction: bad input in any message (or a storage error) stores none of it.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final, Protocol

from mailout.exceptions import InvalidMessageError, MessageTypeError
from mailout.message import EmailMessage
from mailout.queue.mailer import mailer_name
from mailout.queue.models import NewMessage, Priority
from mailout.queue.storage import Enqueuer, Storage, bound_storage, producer
from mailout.smtp import Envelope
from mailout.wire import Context, check
from mailout.wire import prepare as prepare_message

__all__ = ["MessageForm", "aenqueue", "enqueue", "prepare"]

# Batches up to this size are rendered before the write transaction starts (the usual case:
# the store's lock is held only to insert); bigger ones are checked first, then rendered and
# inserted a chunk at a time inside it, so memory never holds every message's bytes at once.
CHUNK: Final = 1000
_MESSAGE_ID: Final = re.compile(rb"^message-id:[ \t]*(.*(?:\r\n[ \t].*)*)", re.IGNORECASE | re.M)

NotBefore = float | datetime.datetime | datetime.timedelta | None


class MessageForm(Protocol):
    """How messages of another kind become an envelope and bytes (mailout.django's form takes
    Django's message objects); ``check`` raises what ``render`` would, for big batches."""

    def render(self, message: Any) -> tuple[Envelope, bytes]: ...

    def check(self, message: Any) -> None: ...


def enqueue(
    messages: Sequence[EmailMessage],
    *,
    priority: str | Priority = "normal",
    not_before: NotBefore = None,
    key: str | Sequence[str | None] | None = None,
    mailer: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    url: str | None = None,
    storage: Storage | None = None,
    connection: object | None = None,
    now: float | None = None,
    form: MessageForm | None = None,
) -> list[int | None]:
    """Store ``messages`` durably for the worker to deliver; return each one's queue id.

    - ``priority``: ``"high"``, ``"normal"`` or ``"low"`` (within new mail and within retries).
    - ``not_before``: not delivered before this moment: a Unix time, an aware ``datetime``
      (a naive one is local time) or a ``timedelta`` from now.
    - ``key``: an idempotency key (one string for one message, or one per message): a message
      whose key is already queued is not stored again, and counts as stored.
    - ``mailer``: the ``MAILERS`` alias or dotted backend path that delivers it (default:
      ``EMAIL_QUEUE_MAILER``, else the SMTP backend from the ``EMAIL_*`` settings).
    - ``metadata``: JSON-serialisable values kept with the message and given to hooks.
    - ``url``/``storage``: where (default: ``EMAIL_QUEUE_URL``).
    - ``connection``: your own psycopg connection (a ``postgresql://`` queue) or sqlite3
      connection to the queue's file (``sqlite:///``): the messages are stored in your
      transaction, and commit or roll back with your data. (A ``"django"`` queue always is:
      through Django's connection.)
    - ``form``: how to render messages that are not mailout's (mailout.django passes its own).

    Returns when the batch is committed. A message without recipients is not stored (its id
    is None), as Django's backends skip such messages.
    """
    now = time.time() if now is None else now
    target: Enqueuer
    if connection is not None:
        target = bound_storage(connection, url) if storage is None else storage.bound_to(connection)
    else:
        target = storage if storage is not None else producer(url)
    messages = list(messages)
    keys = _keys(key, len(messages))
    for index, message in enumerate(messages):
        if not callable(getattr(message, "recipients", None)):  # not a message: say so, early
            raise MessageTypeError(
                f"messages[{index}]: expected an email message, got {type(message).__name__}"
            )
    stored = [i for i, m in enumerate(messages) if m.recipients()]
    if not stored:
        return [None] * len(messages)
    options = _Options(
        mailer=mailer_name(mailer),
        priority=Priority.parse(priority),
        not_before=_due(not_before, now),
        metadata=_metadata(metadata),
        context=Context.read(),
        form=form,
    )
    selected = [messages[i] for i in stored]
    chosen_keys = [keys[i] for i in stored]
    if len(selected) <= CHUNK:
        batch: Any = [options.new(m, k) for m, k in zip(selected, chosen_keys, strict=True)]
    else:
        for message in selected:
            check(message) if form is None else form.check(message)
        batch = (options.new(m, k) for m, k in zip(selected, chosen_keys, strict=True))
    ids = target.enqueue(batch, now=now)
    out: list[int | None] = [None] * len(messages)
    for index, id_ in zip(stored, ids, strict=True):
        out[index] = id_
    return out


async def aenqueue(messages: Sequence[EmailMessage], **options: Any) -> list[int | None]:
    """``enqueue`` without blocking the event loop (rendering and the commit run in a thread)."""
    return await asyncio.to_thread(enqueue, list(messages), **options)


def prepare(messages: Sequence[EmailMessage], *, mailer: str | None = None) -> Iterator[NewMessage]:
    """Render messages as the queue stores them (for tools and tests; ``enqueue`` uses this)."""
    options = _Options(mailer_name(mailer), Priority.NORMAL, None, {}, Context.read(), None)
    return (options.new(m, None) for m in messages)


class _Options:
    __slots__ = ("context", "form", "mailer", "metadata", "not_before", "priority")

    def __init__(
        self,
        mailer: str,
        priority: Priority,
        not_before: float | None,
        metadata: dict[str, Any],
        context: Context,
        form: MessageForm | None,
    ) -> None:
        self.mailer, self.priority = mailer, priority
        self.not_before, self.metadata = not_before, metadata
        self.context = context  # the settings rendering reads, read once for the batch
        self.form = form

    def new(self, message: EmailMessage, key: str | None) -> NewMessage:
        # The SMTP backend's one pass (wire.prepare): every address parsed and checked once,
        # for the envelope, the SMTPUTF8 decision and the header fields alike.
        if self.form is not None:  # another kind of message (Django's): its own renderer
            envelope, data = self.form.render(message)
            sender, recipients = envelope.sender, tuple(envelope.recipients)
            smtputf8 = envelope.smtputf8
        else:
            prepared = prepare_message(message, self.context)
            data = prepared.finish()
            sender, recipients, smtputf8 = prepared.sender, prepared.recipients, prepared.smtputf8
        return NewMessage(
            sender=sender,
            recipients=recipients,
            data=data,
            message_id=_message_id(data),
            subject=_subject(message),
            mailer=self.mailer,
            priority=self.priority,
            not_before=self.not_before,
            key=key,
            smtputf8=smtputf8,
            eight_bit=not data.isascii(),  # RFC 6152: 8-bit content travels with BODY=8BITMIME
            metadata=self.metadata,
        )


def _message_id(data: bytes) -> str:
    head = data[: data.find(b"\r\n\r\n")]
    start = head.find(b"\r\nMessage-ID: ")  # as render() writes it: no regex needed
    if start >= 0:
        end = head.find(b"\r\n", start + 2)
        if end < 0 or head[end + 2 : end + 3] not in (b" ", b"\t"):
            value = head[start + 14 : end if end >= 0 else len(head)]
            return value.decode("utf-8", "replace").strip()
    found = _MESSAGE_ID.search(head)
    if found is None:  # render() always writes one; a message() override might not
        raise InvalidMessageError("the rendered message has no Message-ID header")
    return re.sub(rb"\r\n[ \t]+", b" ", found[1]).decode("utf-8", "replace").strip()


def _subject(message: EmailMessage) -> str:
    for name, value in message.extra_headers.items():
        if name.lower() == "subject":
            return str(value)[:300]
    return str(message.subject)[:300]


def _keys(key: str | Sequence[str | None] | None, count: int) -> list[str | None]:
    if key is None:
        return [None] * count
    if isinstance(key, str):
        if count != 1:
            raise MessageTypeError(f"key: one string for one message; got {count} messages")
        keys: list[str | None] = [key]
    else:
        keys = list(key)
        if len(keys) != count:
            raise MessageTypeError(f"key: {len(keys)} keys for {count} messages")
    for k in keys:
        if k is not None and (not isinstance(k, str) or not k or len(k) > 500):
            raise MessageTypeError(
                f"key: expected a non-empty string of 500 characters at most, got {k!r:.60}"
            )
    return keys


def _due(not_before: NotBefore, now: float) -> float | None:
    if not_before is None:
        return None
    if isinstance(not_before, datetime.timedelta):
        return now + not_before.total_seconds()
    if isinstance(not_before, datetime.datetime):
        return not_before.timestamp()
    if isinstance(not_before, int | float) and not isinstance(not_before, bool):
        return float(not_before)
    raise MessageTypeError(
        f"not_before: expected a Unix time, a datetime or a timedelta, got {not_before!r}"
    )


def _metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise MessageTypeError("metadata: expected a mapping of JSON values")
    try:
        return dict(json.loads(json.dumps(dict(metadata))))
    except (TypeError, ValueError) as exc:
        raise MessageTypeError(f"metadata: not JSON-serialisable ({exc})") from None
