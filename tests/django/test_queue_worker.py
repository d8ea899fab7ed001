"""The worker of a Django project's queue: it opens the project's database, delivers through
mailout's SMTP backend, Django's own smtp backend or a third-party-style backend, sends
mailout.django.signals, and wakes when a transaction that queued mail commits (PostgreSQL)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core import mail
from django.core.mail import EmailMessage, EmailMultiAlternatives
from django.db import transaction

import mailout.django
from mailout.django import signals
from mailout.django.queue import DjangoStorage
from mailout.queue import Hooks, RetryPolicy, State, Worker, WorkerOptions
from mailout.queue.storage import Storage
from tests.conftest import SMTPServer
from tests.django import esp
from tests.django.helpers import HAS_MAILERS, quiet_overrides
from tests.django.queue_db import subprocess_env
from tests.queue.helpers import Recorder
from tests.servers.faulty import FaultyServer, Rule, Script

ROOT = Path(__file__).resolve().parent.parent.parent
MANAGE = ROOT / "tests" / "django" / "manage.py"


def worker_side(alias: str) -> Storage:
    return DjangoStorage.from_url(f"django:{alias}")


def run_worker(alias: str, *, hooks: Hooks | None = None) -> Recorder:
    """``mailout queue worker --once`` in this process, on the project's database."""
    recorder = Recorder()
    with worker_side(alias) as storage:
        worker = Worker(
            storage,
            options=WorkerOptions(batch=50, concurrency=2, lease=30.0),
            policy=RetryPolicy(),
            hooks=Hooks.from_settings() if hooks is None else hooks,
            reporter=recorder,
        )
        assert worker.run(once=True, handle_signals=False) == 0
    return recorder


def states(alias: str) -> dict[str, str]:
    with worker_side(alias) as store:
        return {m.subject: str(m.state) for m in store.list(limit=100)}


def shop_mail(subject: str, *to: str) -> EmailMultiAlternatives:
    message = EmailMultiAlternatives(subject, "Thanks!\n", "Shop <shop@example.com>", list(to))
    message.attach_alternative("<p>Thanks!</p>", "text/html")
    return message


@pytest.fixture
def relay() -> Iterator[FaultyServer]:
    """A relay that defers ``later@`` (451) and refuses ``bad@`` (550)."""
    rules = [
        Rule(r"RCPT TO:<later@", reply="451 4.7.1 greylisted, try later"),
        Rule(r"RCPT TO:<bad@", reply="550 5.1.1 no such user"),
    ]
    with FaultyServer(Script(rules=rules)) as server:
        yield server


@pytest.fixture
def received() -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """Every mailout.django signal sent, as (name, kwargs)."""
    got: list[tuple[str, dict[str, Any]]] = []

    def receiver(name: str) -> Any:
        def receive(signal: Any, sender: Any, **kwargs: Any) -> None:
            assert sender is mailout.django.QueueBackend
            got.append((name, kwargs))

        return receive

    receivers = {
        signals.message_sent: receiver("sent"),
        signals.message_deferred: receiver("deferred"),
        signals.message_failed: receiver("failed"),
    }
    for signal, receive in receivers.items():
        signal.connect(receive, weak=False)
    try:
        yield got
    finally:
        for signal, receive in receivers.items():
            signal.disconnect(receive)


def test_the_worker_delivers_and_sends_the_signals(
    queue_db: str, relay: FaultyServer, received: list[tuple[str, dict[str, Any]]]
) -> None:
    with transaction.atomic(using=queue_db):
        [ok] = mailout.django.enqueue([shop_mail("ok", "ana@example.com")], metadata={"n": 1})
        [later] = mailout.django.enqueue([shop_mail("later", "later@example.com")])
        [bad] = mailout.django.enqueue([shop_mail("bad", "bad@example.com", "bo@example.com")])
    with quiet_overrides(EMAIL_HOST=relay.host, EMAIL_PORT=relay.port, EMAIL_TIMEOUT=5.0):
        run_worker(queue_db)
    assert states(queue_db) == {"ok": "sent", "later": "deferred", "bad": "sent"}
    assert sorted(r for t in relay.transactions for r in t.recipients) == [
        "ana@example.com",
        "bo@example.com",
    ]
    by_id = {kwargs["id"]: (name, kwargs) for name, kwargs in received}
    assert set(by_id) == {ok, later, bad}

    name, sent = by_id[ok]
    assert name == "sent"
    assert sent["recipients"] == ("ana@example.com",)
    assert sent["delivered"] == ("ana@example.com",)
    assert sent["attempt"] == 1
    assert sent["from_email"] == "shop@example.com"
    assert sent["metadata"] == {"n": 1}
    assert sent["replies"]["ana@example.com"].startswith("250")
    assert sent["message_id"].startswith("<")
    assert sent["report"].outcome.state is State.SENT

    name, deferred = by_id[later]
    assert name == "deferred"
    assert deferred["pending"] == ("later@example.com",)
    assert "451" in deferred["reply"]
    assert deferred["retry_at"].timestamp() > time.time() + 200  # the backoff: 300 s ± 20 %

    name, partly = by_id[bad]  # accepted for one recipient, refused for good for the other
    assert name == "sent"
    assert (partly["delivered"], partly["failed"]) == (("bo@example.com",), ("bad@example.com",))
    assert partly["replies"]["bad@example.com"].startswith("550 5.1.1")


def test_a_message_refused_for_good_sends_message_failed(
    queue_db: str, relay: FaultyServer, received: list[tuple[str, dict[str, Any]]]
) -> None:
    [id_] = mailout.django.enqueue([shop_mail("bad", "bad@example.com")])
    with quiet_overrides(EMAIL_HOST=relay.host, EMAIL_PORT=relay.port, EMAIL_TIMEOUT=5.0):
        run_worker(queue_db)
    [(name, kwargs)] = received
    assert name == "failed"
    assert (kwargs["id"], kwargs["pending"], kwargs["reason"]) == (id_, ("bad@example.com",), None)
    assert kwargs["error"].startswith("550 5.1.1") or "550" in kwargs["error"]


def test_a_receiver_that_raises_stops_nothing(
    queue_db: str, relay: FaultyServer, received: list[tuple[str, dict[str, Any]]]
) -> None:
    def broken(**kwargs: Any) -> None:
        raise RuntimeError("a receiver's bug")

    signals.message_sent.connect(broken, weak=False)
    try:
        mailout.django.enqueue([shop_mail("one", "ana@example.com")])
        with quiet_overrides(EMAIL_HOST=relay.host, EMAIL_PORT=relay.port, EMAIL_TIMEOUT=5.0):
            run_worker(queue_db)
    finally:
        signals.message_sent.disconnect(broken)
    assert [name for name, _ in received] == ["sent"]  # the other receiver still ran
    assert states(queue_db) == {"one": "sent"}


def _django_smtp(relay: FaultyServer) -> Any:
    """Django's own smtp backend to ``relay`` as the queue's mailer (a MAILERS entry on 6.1)."""
    if HAS_MAILERS:
        entry = {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {"host": relay.host, "port": relay.port},
        }
        return quiet_overrides(MAILERS={"relay": entry}, EMAIL_QUEUE_MAILER="relay")
    return quiet_overrides(
        EMAIL_HOST=relay.host,
        EMAIL_PORT=relay.port,
        EMAIL_QUEUE_MAILER="django.core.mail.backends.smtp.EmailBackend",
    )


def test_djangos_smtp_backend_delivers_the_stored_bytes(
    queue_db: str, relay: FaultyServer, received: list[tuple[str, dict[str, Any]]]
) -> None:
    message = EmailMessage(
        "Invoice", "See attached.\n", "Shop <shop@example.com>", ["ana@example.com"],
        bcc=["audit@example.com"], headers={"X-Order": "42"},
    )  # fmt: skip
    message.attach("invoice.txt", "total: 10\n", "text/plain")
    with _django_smtp(relay):
        [id_] = mailout.django.enqueue([message])
        with worker_side(queue_db) as store:
            stored = store.get(id_).data  # type: ignore[arg-type]
        run_worker(queue_db)
    [transaction_] = relay.transactions
    assert transaction_.content == stored  # byte for byte: Message-ID, Date, MIME tree
    assert transaction_.sender == "shop@example.com"
    assert transaction_.recipients == ("ana@example.com", "audit@example.com")
    assert [(name, kwargs["id"]) for name, kwargs in received] == [("sent", id_)]
    # Django's own class sent it (not mailout's backend standing in for Django's path).
    [(_, kwargs)] = received
    assert kwargs["reply"] == "250 accepted by django.core.mail.backends.smtp.EmailBackend"


def test_a_third_party_backend_gets_the_fields(queue_db: str) -> None:
    esp.posted.clear()
    message = EmailMultiAlternatives(
        "Your order", "Text body\n", "Shop <shop@example.com>", ["Ana <ana@example.com>"],
        cc=["bo@example.com"], bcc=["audit@example.com"], reply_to=["help@example.com"],
        headers={"X-Order": "42", "List-Unsubscribe": "<mailto:u@example.com>"},
    )  # fmt: skip
    message.attach_alternative("<p>HTML body</p>", "text/html")
    message.attach("data.bin", b"\x00\x01\x02", "application/octet-stream")
    later = shop_mail("later", "x@later.example")
    rejected = shop_mail("rejected", "x@rejected.example")
    with quiet_overrides(EMAIL_QUEUE_MAILER="tests.django.esp.ESPBackend"):
        [id_, *_] = mailout.django.enqueue([message, later, rejected])
        with worker_side(queue_db) as store:
            stored = store.get(id_)  # type: ignore[arg-type]
        run_worker(queue_db)
    assert states(queue_db) == {"Your order": "sent", "later": "deferred", "rejected": "failed"}
    [posted] = esp.posted
    assert posted["from"] == "Shop <shop@example.com>"
    assert (posted["to"], posted["cc"], posted["bcc"]) == (
        ["Ana <ana@example.com>"],
        ["bo@example.com"],
        ["audit@example.com"],
    )
    assert posted["reply_to"] == ["help@example.com"]
    assert posted["recipients"] == ["ana@example.com", "bo@example.com", "audit@example.com"]
    assert (posted["subject"], posted["text"]) == ("Your order", "Text body\n")
    # As on the wire: Django 6 (and mailout, for it) ends a text part with a line break.
    assert [html.rstrip("\n") for html in posted["html"]] == ["<p>HTML body</p>"]
    assert posted["attachments"] == [("data.bin", b"\x00\x01\x02", "application/octet-stream")]
    headers = posted["headers"]
    assert headers["X-Order"] == "42"
    assert headers["List-Unsubscribe"] == "<mailto:u@example.com>"
    assert headers["Message-ID"] == stored.summary.message_id  # the same on every attempt
    assert "Date" in headers


def test_djangos_locmem_backend_gets_a_django_message(queue_db: str) -> None:
    with quiet_overrides(EMAIL_QUEUE_MAILER="django.core.mail.backends.locmem.EmailBackend"):
        mail.outbox = []
        [id_] = mailout.django.enqueue([shop_mail("to the outbox", "ana@example.com")])
        run_worker(queue_db)
    [message] = mail.outbox
    assert isinstance(message, EmailMultiAlternatives)
    assert (message.subject, message.recipients(), message.queue_id) == (
        "to the outbox",
        ["ana@example.com"],
        id_,
    )
    with worker_side(queue_db) as store:
        assert message.message().as_bytes(linesep="\r\n") == store.get(id_).data


def test_postgresql_wakes_an_idle_worker_when_the_transaction_commits(
    tmp_path: Path, relay: FaultyServer
) -> None:
    from django.core.management import call_command

    from tests.django.queue_db import database

    with database("postgresql", tmp_path) as alias:
        call_command("migrate", "mailout", database=alias, verbosity=0)
        recorder = Recorder()
        storage = worker_side(alias)
        with quiet_overrides(
            EMAIL_QUEUE_URL=f"django:{alias}", EMAIL_HOST=relay.host, EMAIL_PORT=relay.port
        ):
            worker = Worker(  # polls every 30 s: only a notification wakes it sooner
                storage,
                options=WorkerOptions(batch=50, concurrency=2, lease=30.0, poll_interval=30.0),
                policy=RetryPolicy(),
                hooks=Hooks(),
                reporter=recorder,
            )
            thread = threading.Thread(target=worker.run, kwargs={"handle_signals": False})
            thread.start()
            try:
                time.sleep(0.8)  # idle: it looked, found nothing, and waits
                with transaction.atomic(using=alias):
                    mailout.django.enqueue([shop_mail("woken", "ana@example.com")])
                    time.sleep(1.0)
                    assert recorder.reports == []  # nothing to see before the commit
                    committed = time.monotonic()
                deadline = committed + 10
                while not recorder.reports and time.monotonic() < deadline:
                    time.sleep(0.01)
                assert recorder.reports, "the message was never delivered"
                assert time.monotonic() - committed < 5.0  # far below the 30 s poll
            finally:
                worker.stop()
                thread.join(30)
                storage.close()


@pytest.mark.timeout(180)
def test_manage_py_mailout_queue_worker_opens_the_projects_database(
    queue_db: str, smtp_server: SMTPServer
) -> None:
    with transaction.atomic(using=queue_db):
        mailout.django.enqueue([shop_mail("from the command", "ana@example.com")])
    queue_settings = {
        "EMAIL_QUEUE_URL": f"django:{queue_db}",
        "EMAIL_HOST": smtp_server.host,
        "EMAIL_PORT": smtp_server.port,
    }
    env = subprocess_env(queue_db, MAILOUT_TEST_SETTINGS=json.dumps(queue_settings))
    command = ["mailout", "queue", "worker", "--once", "--progress", "lines"]
    done = subprocess.run(
        [sys.executable, str(MANAGE), *command],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    [message] = smtp_server.messages()
    assert message["Subject"] == "from the command"
    assert states(queue_db) == {"from the command": "sent"}
    status = subprocess.run(
        [sys.executable, str(MANAGE), "mailout", "queue", "status"],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert status.returncode == 0, status.stderr
    assert "sent" in status.stdout
