"""What a demanding user found in the queue's Django integration: no password of DATABASES
(or of a postgresql:// URL) in a repr or a log line, and a typed error naming the position of
something that is not a message (nothing stored, the transaction still usable)."""

from __future__ import annotations

import io
import logging
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from django.conf import settings
from django.core.mail import EmailMessage
from django.core.mail.backends.smtp import EmailBackend as DjangoSMTP
from django.core.management import call_command
from django.db import connections, transaction
from django.test import override_settings
from django.utils.module_loading import import_string

import mailout.django
from mailout.django import QueueBackend
from mailout.django.queue import DjangoStorage
from mailout.exceptions import MessageTypeError, StorageError
from mailout.message import EmailMessage as MailoutMessage
from mailout.queue.enqueue import prepare
from mailout.queue.storage._pgconn import PgURL
from mailout.utils import without_password
from tests.conftest import SMTPServer
from tests.django.helpers import quiet_overrides
from tests.django.queue_db import database

SECRET = "s3cret-Pw"
QUEUE = "mailout.django.QueueBackend"


def test_a_databases_password_is_in_no_repr_of_the_workers_storage(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with database("postgresql", tmp_path) as alias:
        # The server trusts local connections: the password is sent and ignored.
        connections.settings[alias]["PASSWORD"] = SECRET
        call_command("migrate", "mailout", database=alias, verbosity=0)
        caplog.set_level(logging.DEBUG)
        with DjangoStorage.from_url(f"django:{alias}") as store:
            assert SECRET in store.url.conninfo  # type: ignore[attr-defined]  # it is used
            shown = [repr(store), str(store), repr(store.url)]  # type: ignore[attr-defined]
            store.stats(now=0.0)
        for text in [*shown, caplog.text]:
            assert SECRET not in text


@pytest.mark.parametrize(
    "backend", ["mailout.django.QueueBackend", "mailout.backends.queue.EmailBackend"]
)
def test_a_queue_urls_password_is_in_no_backends_repr(backend: str) -> None:
    url = f"postgresql://mail:{SECRET}@db.example.com/mail?sslpassword={SECRET}&schema=q"
    shown = repr(import_string(backend)(url=url))  # get_connection() is deprecated in 6.1
    assert SECRET not in shown
    assert "mail@db.example.com/mail" in shown
    assert "schema=q" in shown


def test_without_password() -> None:
    assert without_password(f"postgresql://u:{SECRET}@h:5/d?password={SECRET}&a=1") == (
        "postgresql://u@h:5/d?a=1"
    )
    assert without_password("sqlite:///queue.db") == "sqlite:///queue.db"
    assert without_password("django:other") == "django:other"
    assert SECRET not in repr(PgURL.parse(f"postgresql://u:{SECRET}@h/d?password={SECRET}"))


@pytest.mark.parametrize("thing", ["hello", None, b"bytes"])
def test_something_not_a_message_is_a_typed_error_naming_it(queue_db: str, thing: object) -> None:
    good = EmailMessage("Receipt", "Thanks!\n", to=["ana@example.com"])
    expected = r"messages\[1\]: expected an email message"
    with quiet_overrides(EMAIL_BACKEND=QUEUE), transaction.atomic(using=queue_db):
        with pytest.raises(MessageTypeError, match=expected):
            QueueBackend().send_messages([good, thing])
        assert QueueBackend().send_messages([good]) == 1  # the transaction goes on
    with DjangoStorage.from_url(f"django:{queue_db}") as store:
        assert [m.subject for m in store.list(limit=10)] == ["Receipt"]


def test_a_worker_on_a_sqlite_database_not_migrated_says_so_and_creates_nothing(
    tmp_path: Path,
) -> None:
    with database("sqlite", tmp_path) as alias:
        connections[alias].ensure_connection()  # the site has opened the file: it exists
        path = connections[alias].settings_dict["NAME"]
        with pytest.raises(StorageError, match=r"no queue tables: run `python manage.py migrate"):
            DjangoStorage.from_url(f"django:{alias}")
        with connections[alias].cursor() as cursor:
            cursor.execute("SELECT name FROM sqlite_master WHERE name LIKE 'mailout%'")
            assert cursor.fetchall() == []  # no tables behind Django's migrations
        call_command("migrate", "mailout", database=alias, verbosity=0)
        with DjangoStorage.from_url(f"django:{alias}") as store:
            assert store.path == str(path)  # type: ignore[attr-defined]


def test_mailout_config_shows_no_password_of_the_queue_url() -> None:
    url = f"postgresql://mail:{SECRET}@db.example.com/mail?password={SECRET}"
    out = io.StringIO()
    with quiet_overrides(EMAIL_QUEUE_URL=url):
        call_command("mailout", "config", stdout=out)
    assert SECRET not in out.getvalue()
    assert "'postgresql://mail@db.example.com/mail'" in out.getvalue()


def test_without_the_app_the_error_says_to_install_it(tmp_path: Path) -> None:
    apps = [app for app in settings.INSTALLED_APPS if app != "mailout.django"]
    message = EmailMessage("Receipt", "Thanks!\n", to=["ana@example.com"])
    expected = re.escape('add "mailout.django" to INSTALLED_APPS, then run')
    with (
        database("sqlite", tmp_path) as alias,
        override_settings(INSTALLED_APPS=apps),
        pytest.raises(StorageError, match=expected),
    ):
        QueueBackend(url=f"django:{alias}").send_messages([message])


def test_sqlite_locked_by_a_worker_says_how_to_wait_instead(tmp_path: Path) -> None:
    """Django's default (DEFERRED) SQLite transaction read, a worker wrote, the send is refused
    at once: the error names the setting that makes it wait for the lock."""
    message = EmailMessage("Receipt", "Thanks!\n", to=["ana@example.com"])
    with database("sqlite", tmp_path) as alias:
        call_command("migrate", "mailout", database=alias, verbosity=0)
        with DjangoStorage.from_url(f"django:{alias}") as worker:
            with transaction.atomic(using=alias):
                with connections[alias].cursor() as cursor:  # the transaction reads first
                    cursor.execute("SELECT count(*) FROM mailout_queue_message")
                other = MailoutMessage("Other", "x\n", to=["b@example.com"])
                worker.enqueue(prepare([other]), now=1.0)
                with pytest.raises(StorageError, match=r'\["transaction_mode"\] = "IMMEDIATE"'):
                    QueueBackend(url=f"django:{alias}").send_messages([message])
            assert [m.subject for m in worker.list(limit=10)] == ["Other"]


def test_a_django_queue_outside_django_is_a_clear_error_not_a_traceback() -> None:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run(
        [sys.executable, "-m", "mailout", "queue", "status", "--url", "django"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert "'django' is the queue in a Django project's database" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_password_without_a_user_sends_without_auth_as_djangos_backend_does(
    smtp_server: SMTPServer,
) -> None:
    """A project's leftover EMAIL_HOST_PASSWORD without EMAIL_HOST_USER: Django's smtp
    backend sends without AUTH; mailout's sent nothing (an error in each pool thread)."""
    where = {"host": smtp_server.host, "port": smtp_server.port}
    for backend in (DjangoSMTP, mailout.django.EmailBackend):
        message = EmailMessage("No AUTH", "Body\n", "shop@example.com", ["ana@example.com"])
        with warnings.catch_warnings(action="ignore"):  # Django 6.1: "use mail.mailers"
            connection = backend(**where, username="", password=SECRET)
        assert connection.send_messages([message]) == 1
    assert [m["Subject"] for m in smtp_server.messages()] == ["No AUTH", "No AUTH"]
