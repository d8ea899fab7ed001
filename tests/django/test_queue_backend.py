"""mailout.django.QueueBackend: Django's messages stored in mailout's queue, in the project's
own database (SQLite and PostgreSQL) and in Django's transaction."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from django.core import mail
from django.core.mail import EmailMessage, EmailMultiAlternatives
from django.core.management import call_command
from django.db import connections, transaction

import mailout.django
from mailout.conf import settings as mailout_settings
from mailout.django import QueueBackend
from mailout.django.queue import DjangoStorage
from mailout.exceptions import ImproperlyConfigured, InvalidAddressError, StorageError
from mailout.queue.models import Priority, State
from mailout.queue.storage import Storage
from tests.django.helpers import HAS_MAILERS, quiet_overrides
from tests.django.queue_db import database

BACKEND = "mailout.django.QueueBackend"
LOCMEM = "django.core.mail.backends.locmem.EmailBackend"


def worker_side(alias: str) -> Storage:
    """The queue as a worker opens it: mailout's own storage and connection."""
    return DjangoStorage.from_url(f"django:{alias}")


def stored(alias: str) -> list[tuple[str, tuple[str, ...], str]]:
    """(subject, recipients, state) of every stored message, read by a worker's connection."""
    with worker_side(alias) as store:
        return sorted((m.subject, m.recipients, str(m.state)) for m in store.list(limit=1000))


def receipt(n: int = 1, to: str = "ana@example.com") -> EmailMultiAlternatives:
    message = EmailMultiAlternatives(f"Receipt {n}", "Thanks!\n", to=[to])
    message.attach_alternative("<p>Thanks!</p>", "text/html")
    return message


def test_send_mail_enqueues_in_the_projects_database(queue_db: str) -> None:
    with quiet_overrides(EMAIL_BACKEND=BACKEND):
        assert mail.send_mail("Hello", "Body\n", None, ["ana@example.com"]) == 1
    assert stored(queue_db) == [("Hello", ("ana@example.com",), "queued")]


def test_mail_queued_in_a_committed_transaction_is_stored(queue_db: str) -> None:
    backend = QueueBackend()
    with transaction.atomic(using=queue_db):
        assert backend.send_messages([receipt(1), receipt(2)]) == 2
        # Not visible outside the transaction yet: a worker cannot claim it.
        assert stored(queue_db) == []
    assert [s for s, _, _ in stored(queue_db)] == ["Receipt 1", "Receipt 2"]


def test_mail_queued_in_a_rolled_back_transaction_never_exists(queue_db: str) -> None:
    backend = QueueBackend()

    def view() -> None:
        with transaction.atomic(using=queue_db):
            backend.send_messages([receipt(1)])
            raise ZeroDivisionError  # the view fails after sending

    with pytest.raises(ZeroDivisionError):
        view()
    assert stored(queue_db) == []
    # A savepoint rolled back, the outer transaction committed: only the outer mail exists.
    with transaction.atomic(using=queue_db):
        backend.send_messages([receipt(2)])
        try:
            with transaction.atomic(using=queue_db):
                backend.send_messages([receipt(3)])
                raise KeyError("inner")
        except KeyError:
            pass
    assert [s for s, _, _ in stored(queue_db)] == ["Receipt 2"]


def test_a_bad_batch_stores_nothing_and_the_transaction_goes_on(queue_db: str) -> None:
    bad = receipt(2)
    bad.to = ["not an address"]
    backend = QueueBackend()
    with transaction.atomic(using=queue_db):
        with pytest.raises(InvalidAddressError):
            backend.send_messages([receipt(1), bad])
        assert backend.send_messages([receipt(3)]) == 1  # the transaction is still usable
    assert [s for s, _, _ in stored(queue_db)] == ["Receipt 3"]


def test_what_is_stored_is_what_the_smtp_backend_would_send(queue_db: str) -> None:
    """The same fast path as mailout.django.EmailBackend: envelope, Bcc, attachments."""
    message = EmailMessage(
        "Invoice", "See attached.\n", "Shop <shop@example.com>", ["ana@example.com"],
        bcc=["audit@example.com"], headers={"X-Order": "42"},
    )  # fmt: skip
    message.attach("invoice.txt", "total: 10\n", "text/plain")
    [id_] = mailout.django.enqueue([message], metadata={"order": 42})
    with worker_side(queue_db) as store:
        detail = store.get(id_)  # type: ignore[arg-type]
    assert detail.summary.sender == "shop@example.com"
    assert detail.summary.recipients == ("ana@example.com", "audit@example.com")
    assert detail.metadata == {"order": 42}
    assert b"X-Order: 42\r\n" in detail.data
    assert b"audit@" not in detail.data
    assert b'filename="invoice.txt"' in detail.data


def test_per_message_options(queue_db: str) -> None:
    first = mailout.django.enqueue([receipt(1)], priority="high", key="order-1-receipt")
    again = mailout.django.enqueue([receipt(1)], priority="high", key="order-1-receipt")
    assert first == again  # the idempotency key: stored once
    later = time.time() + 3600
    [id_] = mailout.django.enqueue([receipt(2)], not_before=later, mailer=LOCMEM)
    with worker_side(queue_db) as store:
        summaries = {m.id: m for m in store.list(limit=10)}
    assert summaries[first[0]].priority is Priority.HIGH  # type: ignore[index]
    assert summaries[id_].mailer == LOCMEM  # type: ignore[index]
    assert summaries[id_].due_at == pytest.approx(later)  # type: ignore[index]


def test_outside_a_transaction_each_send_commits_at_once(queue_db: str) -> None:
    QueueBackend().send_messages([receipt(1)])
    assert connections[queue_db].get_autocommit()
    assert [s for s, _, _ in stored(queue_db)] == ["Receipt 1"]


def test_async_sending_joins_the_thread_django_uses_for_the_database(queue_db: str) -> None:
    async def send() -> int:
        return await mailout.django.asend_mail("Async", "Body\n", None, ["ana@example.com"])

    with quiet_overrides(EMAIL_BACKEND=BACKEND):
        assert asyncio.run(send()) == 1
        assert asyncio.run(QueueBackend().asend_messages([receipt(7)])) == 1
    assert [s for s, _, _ in stored(queue_db)] == ["Async", "Receipt 7"]


if HAS_MAILERS:  # Django 6.1

    def test_a_mailers_entry_with_options(queue_db: str) -> None:
        mailers = {
            "default": {
                "BACKEND": BACKEND,
                "OPTIONS": {"url": f"django:{queue_db}", "mailer": "smtp", "priority": "high"},
            },
            "smtp": {"BACKEND": "mailout.django.EmailBackend", "OPTIONS": {"host": "localhost"}},
        }
        with quiet_overrides(MAILERS=mailers):
            assert mail.send_mail("Via MAILERS", "Body\n", None, ["ana@example.com"]) == 1
        broken = {"BACKEND": BACKEND, "OPTIONS": {"typo": 1}}
        with (
            quiet_overrides(MAILERS={"default": broken}),
            pytest.raises(
                mail.InvalidMailer, match=r"MAILERS\['default'\]: Unknown options 'typo'"
            ),
        ):
            mail.mailers.default  # noqa: B018
        with worker_side(queue_db) as store:
            [summary] = store.list(limit=10)
        assert (summary.subject, summary.mailer) == ("Via MAILERS", "smtp")


def test_the_default_queue_is_the_default_database(tmp_path: Path) -> None:
    """No EMAIL_QUEUE_URL: with a SQLite or PostgreSQL ``default`` database, it is ``django``."""
    assert mailout_settings.EMAIL_QUEUE_URL == "django"
    call_command("migrate", "mailout", database="default", verbosity=0)
    try:
        with quiet_overrides(EMAIL_BACKEND=BACKEND), transaction.atomic():
            mail.send_mail("Default", "Body\n", None, ["ana@example.com"])
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT subject, state FROM mailout_queue_message")
            assert cursor.fetchall() == [("Default", "queued")]
        # The default database here is in memory: no worker could open it, and it says so.
        with pytest.raises(ImproperlyConfigured, match="in-memory SQLite"):
            DjangoStorage.from_url("django")
    finally:
        call_command("migrate", "mailout", "zero", database="default", verbosity=0)


@pytest.mark.parametrize("vendor", ["sqlite", "postgresql"])
def test_an_unmigrated_database_says_to_migrate(vendor: str, tmp_path: Path) -> None:
    with database(vendor, tmp_path) as alias:
        with pytest.raises(StorageError, match=r"manage\.py migrate mailout"):
            QueueBackend(url=f"django:{alias}").send_messages([receipt()])
        if vendor == "postgresql":  # (SQLite's storage creates its tables when opened)
            with pytest.raises(Exception, match=r"manage\.py migrate mailout"):
                worker_side(alias)


def test_a_url_naming_no_database_is_refused() -> None:
    with pytest.raises(ImproperlyConfigured, match="'django:nope' names no database"):
        QueueBackend(url="django:nope").send_messages([receipt()])
    with pytest.raises(ImproperlyConfigured, match="leave connection out"):
        QueueBackend(url="django", db_connection=object()).send_messages([receipt()])


def test_fail_silently_swallows_a_storage_error(tmp_path: Path) -> None:
    with database("sqlite", tmp_path) as alias:  # not migrated
        assert (
            QueueBackend(url=f"django:{alias}", fail_silently=True).send_messages([receipt()]) == 0
        )


def test_repr_and_the_queue_states(queue_db: str) -> None:
    backend = QueueBackend(mailer=LOCMEM)
    assert repr(backend) == (
        f"<mailout.django.QueueBackend url='django:{queue_db}' mailer='{LOCMEM}'>"
    )
    assert backend.open() is False  # Django's connection: nothing of its own to open
    backend.send_messages([receipt()])
    with worker_side(queue_db) as store:
        assert store.stats(now=time.time()).counts[State.QUEUED] == 1


@pytest.mark.parametrize("vendor", ["sqlite", "postgresql"])
def test_mailout_queue_migrate_is_djangos_migrate_for_a_django_queue(
    vendor: str, tmp_path: Path
) -> None:
    from django.db.migrations.recorder import MigrationRecorder

    with database(vendor, tmp_path) as alias:
        with quiet_overrides(EMAIL_QUEUE_URL=f"django:{alias}"):
            call_command("mailout", "queue", "migrate")
        assert ("mailout", "0001_queue") in MigrationRecorder(
            connections[alias]
        ).applied_migrations()
        assert QueueBackend(url=f"django:{alias}").send_messages([receipt()]) == 1


def test_the_staging_redirect_applies_when_mail_is_queued(queue_db: str) -> None:
    """MAILOUT_REDIRECT_TO holds for queued mail too: what is stored goes to QA only."""
    with quiet_overrides(MAILOUT_REDIRECT_TO=["qa@example.com"]):
        [id_] = mailout.django.enqueue([receipt(1, to="customer@example.com")])
    with worker_side(queue_db) as store:
        detail = store.get(id_)  # type: ignore[arg-type]
    assert detail.summary.recipients == ("qa@example.com",)
    assert b"X-Mailout-Original-To: customer@example.com\r\n" in detail.data
    assert b"\r\nTo: qa@example.com\r\n" in detail.data
