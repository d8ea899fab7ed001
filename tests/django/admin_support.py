"""The queue of the admin's tests: a database of its own (tests/django/queue_db.py) migrated by
Django, filled and moved through its states by mailout's own storage on the same tables, and
the admin's users (in ``default``) with the permissions a test gives them."""

from __future__ import annotations

import contextlib
import email.message
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.db import connections

from mailout.django.models import QueuedMessage
from mailout.queue.models import NewMessage, Outcome, Priority, RecipientResult, State
from mailout.queue.storage import Storage
from tests.django.queue_db import database

ALIAS = "mailqueue"
CHANGELIST = "/admin/mailout/queuedmessage/"
T0 = 1_800_000_000.0  # the queue's clock in these tests (Unix seconds)
LATER = T0 + 10**7  # not due during a test
_clock = itertools.count(1)


def raw_message(subject: str, to: Sequence[str], body: str = "Hello.") -> bytes:
    message = email.message.EmailMessage()
    message["From"] = "Shop <shop@example.com>"
    message["To"] = ", ".join(to)
    message["Subject"] = subject
    message["Message-ID"] = f"<{next(_clock)}@shop.example.com>"
    message["X-Order"] = "1001"
    message.set_content(body)
    return message.as_bytes()


@dataclass
class Queue:
    """mailout's storage on the database ``alias`` that the admin shows."""

    alias: str
    vendor: str
    storage: Storage

    def clear(self) -> None:
        with connections[self.alias].cursor() as cursor:
            for table in ("mailout_queue_event", "mailout_queue_body", "mailout_queue_message"):
                cursor.execute(f"DELETE FROM {table}")

    def put(
        self,
        subject: str = "Your order",
        to: Sequence[str] = ("ana@example.com",),
        *,
        mailer: str = "default",
        priority: Priority = Priority.NORMAL,
        due: bool = False,
    ) -> int:
        """Enqueue one message (not due unless ``due``: a test moves it on itself)."""
        new = NewMessage(
            sender="shop@example.com",
            recipients=tuple(to),
            data=raw_message(subject, to),
            message_id=f"<{next(_clock)}@shop.example.com>",
            subject=subject,
            mailer=mailer,
            priority=priority,
            not_before=None if due else LATER,
        )
        [id] = self.storage.enqueue([new], now=T0 + next(_clock))
        return id

    def put_many(self, count: int, subject: str = "Bulk") -> list[int]:
        news = [
            NewMessage(
                sender="shop@example.com",
                recipients=(f"user{i}@example.com",),
                data=b"Subject: x\r\n\r\nx\r\n",
                message_id=f"<bulk{i}@shop.example.com>",
                subject=f"{subject} {i}",
                mailer="default",
                not_before=LATER,
            )
            for i in range(count)
        ]
        return self.storage.enqueue(news, now=T0)

    def claim(self, id: int) -> int:
        """Make ``id`` due and claim it alone (state ``sending``); its attempt number."""
        now = T0 + 10**6 + next(_clock)
        with connections[self.alias].cursor() as cursor:
            cursor.execute("UPDATE mailout_queue_message SET due_at = %s WHERE id = %s", [now, id])
        [claimed] = self.storage.claim(worker="w1", limit=1, lease=600, now=now)
        assert claimed.id == id
        return claimed.attempt

    def attempt(self, id: int, state: State, *results: RecipientResult) -> None:
        """One attempt of ``id`` with these replies, recorded by the worker that claimed it."""
        attempt = self.claim(id)
        undelivered = tuple(r.recipient for r in results if r.status != "sent")
        outcome = Outcome(
            id=id,
            attempt=attempt,
            state=state,
            results=results,
            recipients=undelivered,
            due_at=LATER if state is State.DEFERRED else None,
            delivered=sum(r.status == "sent" for r in results),
            summary=results[0].text if results else "",
        )
        assert self.storage.record([outcome], worker="w1", now=T0 + 10**6 + next(_clock)) == [True]

    def in_state(self, state: State, subject: str = "Your order", **kw: Any) -> int:
        id = self.put(subject, **kw)
        rcpt = "ana@example.com"
        if state is State.DEFERRED:
            self.attempt(id, state, RecipientResult(rcpt, "deferred", 451, "4.7.1", "try later"))
        elif state is State.FAILED:
            self.attempt(id, state, RecipientResult(rcpt, "failed", 550, "5.1.1", "no such user"))
        elif state is State.SENT:
            sent = RecipientResult(rcpt, "sent", 250, "2.0.0", "queued as 4Xyz", relay_id="4Xyz")
            self.attempt(id, state, sent)
        elif state is State.HELD:
            assert self.storage.hold([id], now=T0 + next(_clock)) == 1
        elif state is State.SENDING:
            self.claim(id)
        return id

    def state(self, id: int) -> str | None:
        row = QueuedMessage.objects.using(self.alias).filter(pk=id).first()
        return None if row is None else str(row.state)


def _storage(alias: str, vendor: str) -> Storage:
    config = settings.DATABASES[alias]
    if vendor == "sqlite":
        from mailout.queue.storage.sqlite import SQLiteStorage

        return SQLiteStorage(config["NAME"])
    from mailout.queue.storage.postgres import PostgresStorage
    from tests.queue.pg import SERVER

    return PostgresStorage(f"{SERVER}?schema={config['OPTIONS']['application_name']}")


@contextlib.contextmanager
def admin_queue(vendor: str, tmp_path: Path) -> Iterator[Queue]:
    """A migrated queue database as ``ALIAS``, and the admin's tables in ``default``."""
    with database(vendor, tmp_path, alias=ALIAS) as alias:
        call_command("migrate", database=alias, verbosity=0)
        call_command("migrate", database="default", verbosity=0)
        storage = _storage(alias, vendor)
        try:
            yield Queue(alias, vendor, storage)
        finally:
            storage.close()
            connections[alias].close()


def staff(username: str, *codenames: str) -> User:
    """A staff user (in ``default``) with exactly these permissions of mailout's models."""
    user, _ = User.objects.get_or_create(username=username, defaults={"is_staff": True})
    perms = Permission.objects.filter(content_type__app_label="mailout", codename__in=codenames)
    assert perms.count() == len(codenames), codenames
    user.user_permissions.set(perms)
    return user
