"""Mailers that are not SMTP: console, file, locmem, custom backends by path or MAILERS alias."""

from __future__ import annotations

import pytest

import mailout
from mailout.queue import Queue, QueuedMessage, State
from tests.queue import backends
from tests.queue.conftest import Clock
from tests.queue.helpers import drain, smtp_to, states
from tests.servers.faulty import FaultyServer

HERE = "tests.queue.backends"


@pytest.fixture(autouse=True)
def _reset_backends() -> None:
    backends.FieldsBackend.received.clear()
    backends.FlakyBackend.calls.clear()


def rich_message() -> mailout.EmailMultiAlternatives:
    message = mailout.EmailMultiAlternatives(
        "Invoice ☕", "Text body\n", "Shop <shop@example.com>", ["Ana <ana@example.com>"],
        bcc=["audit@example.com"], cc=["bo@example.com"], reply_to=["help@example.com"],
    )  # fmt: skip
    message.attach_alternative("<p>HTML body</p>", "text/html")
    message.attach("invoice.pdf", b"%PDF-1.4 fake", "application/pdf")
    return message


def queue_with(mailer: str, clock: Clock, **config: object) -> Queue:
    mailout.configure({"EMAIL_QUEUE_URL": "memory:", "EMAIL_QUEUE_MAILER": mailer, **config})
    return Queue(clock=clock)


def test_locmem_gets_the_stored_bytes(clock: Clock) -> None:
    queue = queue_with("mailout.backends.locmem.EmailBackend", clock)
    [id_] = queue.enqueue([rich_message()])
    drain(queue.storage, clock)
    [delivered] = mailout.outbox
    assert isinstance(delivered, QueuedMessage)
    assert delivered.wire_bytes == queue.show(id_).data  # type: ignore[arg-type]
    assert delivered.recipients() == ["ana@example.com", "bo@example.com", "audit@example.com"]
    assert states(queue) == {"sent": 1}


def test_console_writes_the_stored_bytes(clock: Clock, capsys: pytest.CaptureFixture[str]) -> None:
    queue = queue_with("mailout.backends.console.EmailBackend", clock)
    [id_] = queue.enqueue([rich_message()])
    drain(queue.storage, clock)
    data = queue.show(id_).data  # type: ignore[arg-type]
    assert data is not None
    assert capsys.readouterr().out.startswith(data.replace(b"\r\n", b"\n").decode())


def test_file_backend_by_mailers_alias(clock: Clock, tmp_path: object) -> None:
    folder = f"{tmp_path}/mail"
    queue = queue_with(
        "files",
        clock,
        MAILERS={
            "files": {
                "BACKEND": "mailout.backends.filebased.EmailBackend",
                "OPTIONS": {"file_path": folder},
            }
        },
    )
    [id_] = queue.enqueue([rich_message()])
    drain(queue.storage, clock)
    import pathlib

    [written] = list(pathlib.Path(folder).iterdir())
    data = queue.show(id_).data  # type: ignore[arg-type]
    assert data is not None
    assert written.read_bytes().startswith(data.replace(b"\r\n", b"\n"))


def test_a_backend_that_reads_fields_gets_them_from_the_stored_bytes(clock: Clock) -> None:
    queue = queue_with(f"{HERE}.FieldsBackend", clock)
    [id_] = queue.enqueue([rich_message()])
    drain(queue.storage, clock)
    [got] = backends.FieldsBackend.received
    assert got["subject"] == got["parsed_subject"] == "Invoice ☕"
    assert got["from"] == "Shop <shop@example.com>"
    assert (got["to"], got["cc"], got["bcc"]) == (
        ["Ana <ana@example.com>"],
        ["bo@example.com"],
        ["audit@example.com"],
    )
    assert (got["body"], got["html"], got["attachments"]) == (
        "Text body\n",
        ["<p>HTML body</p>\n"],
        ["invoice.pdf"],
    )
    assert got["headers"]["Message-ID"] == queue.show(id_).summary.message_id  # type: ignore[arg-type]
    assert "Date" in got["headers"]


def test_delivery_unknown_is_retried_with_the_same_message_id(clock: Clock) -> None:
    queue = queue_with(f"{HERE}.FlakyBackend", clock)
    [id_] = queue.enqueue([rich_message()])
    assert id_ is not None
    drain(queue.storage, clock)
    events = queue.show(id_).events
    assert {(e.kind, e.attempt) for e in events} == {("deferred", 1)}
    assert "may have arrived" in events[0].text
    clock.advance(300)
    drain(queue.storage, clock)
    assert queue.show(id_).summary.state == State.SENT
    first, second = backends.FlakyBackend.calls
    assert first == second  # the same bytes: receivers can de-duplicate by Message-ID


def test_a_refusing_backend_fails_the_message(clock: Clock) -> None:
    queue = queue_with(f"{HERE}.RefusingBackend", clock)
    [id_] = queue.enqueue([rich_message()])
    drain(queue.storage, clock)
    summary = queue.show(id_).summary  # type: ignore[arg-type]
    assert (summary.state, summary.last_reply) == (
        State.FAILED,
        "InvalidMessageError: this provider cannot take this message",
    )


def test_a_backend_that_sends_nothing_defers(clock: Clock) -> None:
    queue = queue_with(f"{HERE}.SilentBackend", clock)
    [id_] = queue.enqueue([rich_message()])
    drain(queue.storage, clock)
    summary = queue.show(id_).summary  # type: ignore[arg-type]
    assert summary.state == State.DEFERRED
    assert "SilentBackend reported the message as not sent" in (summary.last_reply or "")


def test_each_message_is_delivered_by_its_own_mailer(clock: Clock) -> None:
    with FaultyServer() as server:
        smtp_to(server, EMAIL_QUEUE_URL="memory:")
        mailout.configure(
            {
                "EMAIL_QUEUE_URL": "memory:",
                "MAILERS": {
                    "relay": {
                        "BACKEND": "mailout.backends.smtp.EmailBackend",
                        "OPTIONS": {"host": server.host, "port": server.port},
                    },
                    "test": {"BACKEND": "mailout.backends.locmem.EmailBackend"},
                },
            }
        )
        queue = Queue(clock=clock)
        queue.enqueue([rich_message()], mailer="relay")
        queue.enqueue([rich_message(), rich_message()], mailer="test")
        drain(queue.storage, clock)
    assert len(server.transactions) == 1
    assert len(mailout.outbox) == 2
    assert states(queue) == {"sent": 3}


def test_a_mailer_gone_from_the_settings_defers_its_mail(clock: Clock) -> None:
    mailout.configure(
        {
            "EMAIL_QUEUE_URL": "memory:",
            "MAILERS": {"old": {"BACKEND": "mailout.backends.locmem.EmailBackend"}},
        }
    )
    queue = Queue(clock=clock)
    [gone] = queue.enqueue([rich_message()], mailer="old")
    [fine] = queue.enqueue([rich_message()], mailer="mailout.backends.locmem.EmailBackend")
    mailout.configure(
        {
            "EMAIL_QUEUE_URL": "memory:",
            "MAILERS": {"new": {"BACKEND": "mailout.backends.locmem.EmailBackend"}},
        }
    )
    drain(queue.storage, clock)
    assert queue.show(fine).summary.state == State.SENT  # type: ignore[arg-type]
    summary = queue.show(gone).summary  # type: ignore[arg-type]
    assert summary.state == State.DEFERRED
    assert "'old'" in (summary.last_reply or "")
