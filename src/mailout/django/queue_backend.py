"""``EMAIL_BACKEND = "mailout.django.QueueBackend"``: Django's messages into mailout's durable
queue, by default in the project's own database and inside Django's transactions."""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any, Final

from asgiref.sync import sync_to_async
from django.core.mail.backends.base import (  # type: ignore[import-untyped]
    BaseEmailBackend as DjangoBaseEmailBackend,
)

from mailout.backends.queue import EmailBackend as CoreQueueBackend
from mailout.conf import settings
from mailout.django import redirect, serialize
from mailout.django.backends import DjangoConfigured
from mailout.django.conf import use_django_settings
from mailout.exceptions import StorageError
from mailout.queue.enqueue import NotBefore
from mailout.queue.enqueue import enqueue as core_enqueue
from mailout.queue.models import Priority
from mailout.smtp import Envelope

__all__ = ["DjangoForm", "QueueBackend", "enqueue"]

_OPTIONS: Final = frozenset(inspect.signature(CoreQueueBackend.__init__).parameters) - {
    "self",
    "kwargs",
}


class DjangoForm:
    """Django's message objects (and mailout's) as mailout.django's EmailBackend sends them:
    the fast serialiser where it can be sure, Django's own ``message()`` per message where not
    (mailout.django.serialize), and ``MAILOUT_REDIRECT_TO`` applied before they are stored."""

    def render(self, message: Any) -> tuple[Envelope, bytes]:
        found = serialize.envelope(message)
        redirected = redirect.current()
        envelope = found if redirected is None else redirected.envelope(found)
        data = serialize.render(message, smtputf8=envelope.smtputf8, redirect=redirected)
        return envelope, data

    def check(self, message: Any) -> None:
        serialize.check(message)


FORM: Final = DjangoForm()


def enqueue(
    messages: Sequence[Any],
    *,
    priority: str | Priority = "normal",
    not_before: NotBefore = None,
    key: str | Sequence[str | None] | None = None,
    mailer: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    url: str | None = None,
    connection: object | None = None,
) -> list[int | None]:
    """``mailout.queue.enqueue`` for Django's message objects: the per-message options
    (``priority``, ``not_before``, ``key``, ``mailer``, ``metadata``) for one call. With the
    default ``EMAIL_QUEUE_URL`` (``"django"``) the messages are stored in the calling thread's
    transaction of Django's ``default`` database (``url="django:<alias>"``: another alias)."""
    use_django_settings()
    return core_enqueue(
        list(messages),
        priority=priority,
        not_before=not_before,
        key=key,
        mailer=mailer,
        metadata=metadata,
        url=url,
        connection=connection,
        form=FORM,
    )


class QueueBackend(DjangoConfigured, CoreQueueBackend, DjangoBaseEmailBackend):  # type: ignore[misc]
    """A Django email backend (a subclass of Django's ``BaseEmailBackend``) that stores
    Django's message objects, and mailout's, in mailout's durable queue; ``manage.py mailout
    queue worker`` delivers them.

    Configured from ``EMAIL_QUEUE_URL`` and ``EMAIL_QUEUE_MAILER`` when built by
    ``get_connection()``, or from a ``MAILERS`` entry's ``OPTIONS`` (Django 6.1). Options (those
    of ``mailout.backends.queue.EmailBackend``): ``url`` (default ``EMAIL_QUEUE_URL``, whose
    default in a Django project on SQLite or PostgreSQL is ``"django"``: the ``default``
    database, in Django's transaction), ``mailer`` (the ``MAILERS`` alias or backend path that
    delivers: mailout's, Django's or another package's), ``priority``, ``not_before``,
    ``db_connection`` (a psycopg connection of your own, for a ``postgresql://`` queue),
    ``fail_silently``. ``send_messages()`` returns the number of messages stored.
    """

    options = _OPTIONS

    def __repr__(self) -> str:
        from mailout.utils import without_password

        alias = f" alias={self.alias!r}" if getattr(self, "alias", None) is not None else ""
        url = without_password(self._url())
        return f"<mailout.django.QueueBackend url={url!r} mailer={self.mailer!r}{alias}>"

    def _url(self) -> str:
        return str(self.url if self.url is not None else settings.EMAIL_QUEUE_URL)

    def open(self) -> bool | None:
        """Open the queue's store; nothing to open for a ``django`` queue (Django's
        connection is used as the thread has it)."""
        if self.db_connection is None and self._url().partition(":")[0].lower() == "django":
            return False
        return super().open()

    def send_messages(self, email_messages: Sequence[Any]) -> int:
        messages = list(email_messages)
        if not messages:
            return 0
        try:
            ids = core_enqueue(
                messages,
                priority=self.priority,
                not_before=self.not_before,
                mailer=self.mailer,
                url=self.url,
                connection=self.db_connection,
                form=FORM,
            )
        except StorageError:
            if self.fail_silently:
                return 0
            raise
        return sum(1 for id_ in ids if id_ is not None)

    async def asend_messages(self, email_messages: Sequence[Any]) -> int:
        """``send_messages`` in the thread Django gives database work from async code
        (``sync_to_async``, thread-sensitive), so the mail joins that thread's connection."""
        batch = list(email_messages)
        return int(await sync_to_async(self.send_messages, thread_sensitive=True)(batch))
