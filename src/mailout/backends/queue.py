"""The queue backend: ``send_messages()`` stores messages durably; a worker delivers them.

``EMAIL_BACKEND = "mailout.backends.queue.EmailBackend"`` (or a ``MAILERS`` entry with this
``BACKEND``) makes every ``send_mail()`` return as soon as its message is committed to the
queue (``EMAIL_QUEUE_URL``); ``mailout queue worker`` delivers it through the mailer named by
the ``mailer`` option or ``EMAIL_QUEUE_MAILER``. Options apply to every message this backend
stores; per-message choices go through ``mailout.queue.enqueue()``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mailout.backends.base import BaseEmailBackend
from mailout.exceptions import StorageError

if TYPE_CHECKING:
    from mailout.message import EmailMessage
    from mailout.queue.enqueue import NotBefore
    from mailout.queue.storage import Storage

__all__ = ["EmailBackend"]


class EmailBackend(BaseEmailBackend):
    """Enqueue instead of sending. ``send_messages()`` returns the number of messages stored,
    after the store committed them (a message whose idempotency key is already queued counts
    as stored); bad input in any message stores none of the batch.

    Options: ``url`` (default ``EMAIL_QUEUE_URL``), ``mailer`` (the ``MAILERS`` alias or
    backend path that delivers; default ``EMAIL_QUEUE_MAILER``), ``priority`` (``"high"``,
    ``"normal"``, ``"low"``), ``not_before`` (a Unix time, datetime or timedelta),
    ``db_connection`` (your psycopg connection, for a ``postgresql://`` queue: messages are
    stored in your transaction and commit or roll back with it).
    """

    def __init__(
        self,
        fail_silently: bool = False,
        *,
        url: str | None = None,
        mailer: str | None = None,
        priority: str = "normal",
        not_before: NotBefore = None,
        db_connection: object | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(fail_silently=fail_silently, **kwargs)
        from mailout.queue.mailer import mailer_name
        from mailout.queue.models import Priority

        self.url = url
        self.mailer = mailer_name(mailer)  # checked now: a typo fails here, not in the worker
        self.priority = Priority.parse(priority, what="priority option")
        self.not_before = not_before
        self.db_connection = db_connection
        self.storage: Storage | None = None

    def __repr__(self) -> str:
        from mailout.utils import without_password

        url = None if self.url is None else without_password(self.url)
        return f"<queue.EmailBackend url={url!r} mailer={self.mailer!r}>"

    def open(self) -> bool | None:
        """Open the store (one per URL per process, shared by every queue backend)."""
        if self.storage is not None:
            return False
        from mailout.queue.storage import shared_storage

        try:
            self.storage = shared_storage(self.url)
        except StorageError:
            if self.fail_silently:
                return None
            raise
        return True

    def close(self) -> None:
        self.storage = None  # the shared store stays open for the next backend

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        from mailout.queue.enqueue import enqueue

        messages = list(email_messages)
        if not messages:
            return 0
        if self.db_connection is not None:  # the caller's transaction: no store of our own
            ids = enqueue(
                messages,
                priority=self.priority,
                not_before=self.not_before,
                mailer=self.mailer,
                url=self.url,
                connection=self.db_connection,
            )
            return sum(1 for id_ in ids if id_ is not None)
        self.open()
        if self.storage is None:
            return 0
        try:
            ids = enqueue(
                messages,
                priority=self.priority,
                not_before=self.not_before,
                mailer=self.mailer,
                storage=self.storage,
            )
        except StorageError:
            if self.fail_silently:
                return 0
            raise
        return sum(1 for id_ in ids if id_ is not None)
