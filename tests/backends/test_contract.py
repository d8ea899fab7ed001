"""One suite, every backend: what a user of the backend contract can rely on."""

from __future__ import annotations

import asyncio
import email
import email.policy
import io
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage as StdMessage
from pathlib import Path

import pytest

import mailout
from mailout.backends.base import BaseEmailBackend
from tests.conftest import SMTPServer

SEPARATOR = b"-" * 79


@dataclass
class BackendUnderTest:
    name: str
    make: Callable[..., BaseEmailBackend]
    mailbox: Callable[[], list[StdMessage]]
    envelopes: Callable[[], list[list[str]]] | None = None


def _reparse(data: bytes) -> StdMessage:
    return email.message_from_bytes(data, policy=email.policy.default)  # type: ignore[return-value]


def _split(blob: bytes) -> list[StdMessage]:
    # Each message is written as its bytes, "\n", a line of 79 dashes, "\n".
    chunks = [c[:-1] for c in blob.split(SEPARATOR + b"\n") if c]
    return [email.message_from_bytes(c, policy=email.policy.default) for c in chunks]  # type: ignore[misc]


@pytest.fixture(params=["locmem", "filebased", "console", "smtp"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> BackendUnderTest:
    name = request.param
    if name == "locmem":
        return BackendUnderTest(
            name,
            lambda **kw: mailout.get_connection("mailout.backends.locmem.EmailBackend", **kw),
            lambda: [_reparse(m.message().as_bytes()) for m in mailout.outbox],
            lambda: [m.recipients() for m in mailout.outbox],
        )
    if name == "filebased":
        folder = tmp_path / "mail"
        return BackendUnderTest(
            name,
            lambda **kw: mailout.get_connection(
                "mailout.backends.filebased.EmailBackend", file_path=folder, **kw
            ),
            # No folder yet means nothing was ever written.
            lambda: [
                m
                for f in sorted(folder.iterdir() if folder.exists() else [])
                for m in _split(f.read_bytes())
            ],
        )
    if name == "console":
        stream = io.StringIO()
        return BackendUnderTest(
            name,
            lambda **kw: mailout.get_connection(
                "mailout.backends.console.EmailBackend", stream=stream, **kw
            ),
            lambda: _split(stream.getvalue().encode()),
        )
    server: SMTPServer = request.getfixturevalue("smtp_server")
    return BackendUnderTest(
        name,
        lambda **kw: mailout.get_connection(
            "mailout.backends.smtp.EmailBackend", host=server.host, port=server.port, **kw
        ),
        server.messages,
        lambda: [r.rcpt_tos for r in server.received],
    )


def make_message(**kwargs: object) -> mailout.EmailMessage:
    fields: dict[str, object] = {
        "subject": "Hello",
        "body": "Body goes here",
        "from_email": "from@example.com",
        "to": ["to@example.com"],
    }
    fields.update(kwargs)
    return mailout.EmailMessage(**fields)  # type: ignore[arg-type]


def test_send_messages_returns_count(backend: BackendUnderTest) -> None:
    connection = backend.make()
    sent = connection.send_messages(
        [make_message(to=["a@example.com"]), make_message(to=["b@example.com"])]
    )
    assert sent == 2
    assert [m["To"] for m in backend.mailbox()] == ["a@example.com", "b@example.com"]


def test_empty_list_sends_nothing(backend: BackendUnderTest) -> None:
    assert backend.make().send_messages([]) == 0
    assert backend.mailbox() == []


@pytest.mark.parametrize("thing", ["hello", None, {"to": ["a@example.com"]}])
def test_what_is_not_a_message_is_refused_by_position(
    backend: BackendUnderTest, thing: object
) -> None:
    with pytest.raises(mailout.MessageTypeError, match=r"messages\[1\]: expected an email message"):
        backend.make().send_messages([make_message(), thing])  # type: ignore[list-item]
    assert backend.mailbox() == []  # the good message before it is not sent either


def test_what_is_not_a_message_is_refused_by_position_async(backend: BackendUnderTest) -> None:
    with pytest.raises(mailout.MessageTypeError, match=r"messages\[0\]"):
        asyncio.run(backend.make().asend_messages(["hello"]))  # type: ignore[list-item]
    assert backend.mailbox() == []


def test_headers_and_body_arrive(backend: BackendUnderTest) -> None:
    message = make_message(
        subject="Olá, mundo ☕",
        body="Corpo em português: ação\n",
        from_email="Zoë Ñ <zoe@example.com>",
        to=["Ann <ann@example.com>"],
        cc=["cc@example.com"],
        reply_to=["reply@example.com"],
        headers={"X-Campaign": "42"},
    )
    assert backend.make().send_messages([message]) == 1
    [received] = backend.mailbox()
    assert received["Subject"] == "Olá, mundo ☕"
    assert received["From"] == "Zoë Ñ <zoe@example.com>"
    assert received["To"] == "Ann <ann@example.com>"
    assert received["Cc"] == "cc@example.com"
    assert received["Reply-To"] == "reply@example.com"
    assert received["X-Campaign"] == "42"
    assert received["Message-ID"]
    assert received["Date"]
    assert received.get_content() == "Corpo em português: ação\n"


def test_bcc_never_in_headers(backend: BackendUnderTest) -> None:
    message = make_message(bcc=["hidden@example.com"])
    assert backend.make().send_messages([message]) == 1
    [received] = backend.mailbox()
    assert "Bcc" not in received
    assert "hidden@example.com" not in received.as_string()
    if backend.envelopes is not None:
        assert backend.envelopes() == [["to@example.com", "hidden@example.com"]]


def test_alternatives_and_attachments_arrive(backend: BackendUnderTest) -> None:
    message = mailout.EmailMultiAlternatives(
        "Report", "plain", "from@example.com", ["to@example.com"]
    )
    message.attach_alternative("<p>html</p>", "text/html")
    message.attach("data.bin", bytes(range(256)), "application/octet-stream")
    message.attach("résumé.txt", "texto")
    assert backend.make().send_messages([message]) == 1
    [received] = backend.mailbox()
    assert received.get_body(("plain",)).get_content() == "plain\n"  # type: ignore[union-attr]
    assert received.get_body(("html",)).get_content() == "<p>html</p>\n"  # type: ignore[union-attr]
    attachments = {a.get_filename(): a.get_content() for a in received.iter_attachments()}
    # Text parts end with a line break, as the stdlib (and Django 6) write them.
    assert attachments == {"data.bin": bytes(range(256)), "résumé.txt": "texto\n"}


def test_context_manager_opens_and_closes(backend: BackendUnderTest) -> None:
    with backend.make() as connection:
        assert connection.send_messages([make_message()]) == 1
        assert connection.send_messages([make_message()]) == 1
    assert len(backend.mailbox()) == 2


def test_bad_header_sends_nothing(backend: BackendUnderTest) -> None:
    good, bad = make_message(), make_message(subject="Hi\nBcc: victim@example.com")
    with pytest.raises(mailout.BadHeaderError, match="subject"):
        backend.make().send_messages([good, bad])
    assert backend.mailbox() == []


def test_message_send_uses_given_connection(backend: BackendUnderTest) -> None:
    connection = backend.make()
    assert make_message(connection=connection).send() == 1
    assert len(backend.mailbox()) == 1


def test_message_without_recipients_is_not_sent(backend: BackendUnderTest) -> None:
    assert make_message(to=[], connection=backend.make()).send() == 0
    # Django's contract differs here by backend: the SMTP backend has nothing to send and
    # counts 0; the recording backends (locmem, file, console) record the message and count it.
    expected = 0 if backend.name == "smtp" else 1
    assert backend.make().send_messages([make_message(to=[])]) == expected
