"""Staging safety: MAILOUT_REDIRECT_TO sends every message to the given addresses instead, on
every path a message takes through mailout.django's backend, and keeps the original recipients
in headers no input can break out of."""

from __future__ import annotations

import asyncio
import email
import email.policy
from email.message import EmailMessage as StdMessage
from email.message import MIMEPart
from email.mime.text import MIMEText
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.mail import EmailMessage, EmailMultiAlternatives
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

import mailout
from mailout import wire
from mailout.django import EmailBackend, asend_mail, serialize
from mailout.django.redirect import Redirect
from tests.conftest import SMTPServer
from tests.django.helpers import MODERN, quiet_overrides
from tests.django.messages import Overridden

QA = ["qa@example.com", "QA Two <qa2@example.com>"]


def parsed(data: bytes) -> StdMessage:
    message = email.message_from_bytes(data.replace(b"\r\n", b"\n"), policy=email.policy.default)
    assert isinstance(message, StdMessage)
    return message


def customer_message(cls: Any = EmailMultiAlternatives, **kwargs: Any) -> Any:
    message = cls(
        "Your order",
        "Shipped.\n",
        None,
        ["Ana Lima <ana@example.com>", "bo@example.com"],
        cc=["cc@example.com"],
        bcc=["audit@example.com"],
        **kwargs,
    )
    if isinstance(message, EmailMultiAlternatives):
        message.attach_alternative("<p>Shipped.</p>\n", "text/html")
    return message


def assert_redirected(server: SMTPServer, *, to: str = "ana@example.com, bo@example.com") -> None:
    [received] = server.received
    assert received.rcpt_tos == ["qa@example.com", "qa2@example.com"]
    message = parsed(received.data)
    assert [a.addr_spec for a in message["To"].addresses] == ["qa@example.com", "qa2@example.com"]
    assert message["Cc"] is None
    assert message["Bcc"] is None
    assert message["X-Mailout-Original-To"] == to
    assert message["X-Mailout-Original-Cc"] == "cc@example.com"
    assert message["X-Mailout-Original-Bcc"] == "audit@example.com"
    assert message["Subject"] == "Your order"
    assert message.get_body(("plain",)).get_content() == "Shipped.\n"


def send(server: SMTPServer, message: Any) -> None:
    with quiet_overrides(MAILOUT_REDIRECT_TO=QA):
        assert EmailBackend(host=server.host, port=server.port).send_messages([message]) == 1


def test_the_fast_path_is_redirected(smtp_server: SMTPServer) -> None:
    send(smtp_server, customer_message())
    assert wire.stats.fast == 1
    assert_redirected(smtp_server)


def test_a_message_override_is_redirected(smtp_server: SMTPServer) -> None:
    send(smtp_server, customer_message(Overridden))
    assert wire.stats.fast == 0
    assert_redirected(smtp_server)
    assert parsed(smtp_server.received[0].data)["X-Overridden"] == "yes"


def test_address_headers_given_in_headers_are_replaced(smtp_server: SMTPServer) -> None:
    headers = {"To": "Team <team@example.com>", "cc": "boss@example.com", "Reply-To": "h@x.io"}
    message = customer_message(headers=headers)
    send(smtp_server, message)
    assert_redirected(smtp_server)
    assert parsed(smtp_server.received[0].data)["Reply-To"] == "h@x.io"


def test_a_mime_part_attachment_is_redirected(smtp_server: SMTPServer) -> None:
    message = customer_message()
    if MODERN:
        part = MIMEPart()
        part.set_content("notes\n", disposition="attachment", filename="notes.txt")
    else:
        part = MIMEText("notes\n")
    message.attach(part)
    send(smtp_server, message)
    assert wire.stats.fast == 0
    assert_redirected(smtp_server)


def test_mailouts_own_messages_are_redirected(smtp_server: SMTPServer) -> None:
    message = mailout.EmailMessage(
        "Your order",
        "Shipped.\n",
        None,
        ["Ana Lima <ana@example.com>", "bo@example.com"],
        cc=["cc@example.com"],
        bcc=["audit@example.com"],
    )
    send(smtp_server, message)
    assert_redirected(smtp_server)
    assert message.to == ["Ana Lima <ana@example.com>", "bo@example.com"]  # not changed


def test_async_sending_is_redirected(smtp_server: SMTPServer) -> None:
    with quiet_overrides(MAILOUT_REDIRECT_TO=QA):
        backend = EmailBackend(host=smtp_server.host, port=smtp_server.port)
        assert asyncio.run(backend.asend_messages([customer_message()])) == 1
    assert_redirected(smtp_server)


def test_through_djangos_api(shop_mail: SMTPServer) -> None:
    with quiet_overrides(MAILOUT_REDIRECT_TO=["qa@example.com"]):
        asyncio.run(asend_mail("Hi", "Body.\n", None, ["customer@example.com"]))
    [received] = shop_mail.received
    assert received.rcpt_tos == ["qa@example.com"]
    assert parsed(received.data)["X-Mailout-Original-To"] == "customer@example.com"


def test_off_when_empty(smtp_server: SMTPServer) -> None:
    with quiet_overrides(MAILOUT_REDIRECT_TO=[]):
        backend = EmailBackend(host=smtp_server.host, port=smtp_server.port)
        backend.send_messages([customer_message()])
    [received] = smtp_server.received
    assert received.rcpt_tos == [
        "ana@example.com",
        "bo@example.com",
        "cc@example.com",
        "audit@example.com",
    ]
    assert parsed(received.data)["X-Mailout-Original-To"] is None


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("qa@example.com", "expected a list of email addresses, got str"),
        (["qa@example.com", "not an address"], "MAILOUT_REDIRECT_TO"),
        (["qa@example.com\nBcc: x@example.com"], "MAILOUT_REDIRECT_TO"),
        ([42], "MAILOUT_REDIRECT_TO"),
    ],
)
def test_a_bad_setting_sends_nothing(smtp_server: SMTPServer, value: object, error: str) -> None:
    with (
        quiet_overrides(MAILOUT_REDIRECT_TO=value),
        pytest.raises(ImproperlyConfigured, match=error),
    ):
        EmailBackend(host=smtp_server.host, port=smtp_server.port).send_messages(
            [customer_message()]
        )
    assert smtp_server.received == []


# Display names: words of every script, with now and then a character that ends a header line,
# opens an encoded word or means something to the address parser.
WORDS = st.from_regex(r"[A-Za-zÀ-ÿЀ-ӿ一-龥 .'-]{0,10}", fullmatch=True)
SPECIALS = st.sampled_from(["\r", "\n", "\r\n", "=?", "?=", '"', ",", "<", ">", ":", ";", "\0"])
NAMES = st.lists(st.one_of(WORDS, WORDS, WORDS, SPECIALS), max_size=4).map("".join)
LOCAL = st.from_regex(r"[a-z0-9._+-]{1,12}|\"[^\"\\\r\n]{1,8}\"|[a-zé]{1,6}", fullmatch=True)


@given(names=st.lists(st.tuples(NAMES, LOCAL), min_size=1, max_size=4), override=st.booleans())
@hypothesis_settings(max_examples=150, deadline=None)
def test_original_recipients_cannot_add_a_header(
    names: list[tuple[str, str]], override: bool
) -> None:
    """Whatever the recipients, the redirected message has exactly its own header fields, and
    X-Mailout-Original-To reads back as the addresses the message was meant for."""
    to = [
        f"{name} <{local}@example.com>" if name else f"{local}@example.com" for name, local in names
    ]
    message = (Overridden if override else EmailMessage)("S", "Body.\n", "s@example.com", to)
    redirect = Redirect(("qa@example.com",))
    try:
        envelope = serialize.envelope(message)
        data = serialize.render(message, smtputf8=envelope.smtputf8, redirect=redirect)
    except ValueError:
        return  # refused (an address that does not parse, a line break): nothing to send
    head = data.split(b"\r\n\r\n", 1)[0]
    names_written = [
        line.split(b":", 1)[0].lower()
        for line in head.split(b"\r\n")
        if line and line[:1] not in (b" ", b"\t")
    ]
    expected = {b"subject", b"from", b"to", b"date", b"message-id", b"x-mailout-original-to"}
    expected |= {b"content-type", b"content-transfer-encoding", b"mime-version"}
    if override:
        expected.add(b"x-overridden")
    assert sorted(names_written) == sorted(expected)
    text = data.decode("utf-8", "surrogateescape")
    written = email.message_from_string(text, policy=email.policy.default)
    # (The stdlib reads folding whitespace before a long first word back as part of the value.)
    original = str(written["X-Mailout-Original-To"]).lstrip(" ")
    assert original == ", ".join(envelope.recipients)
    assert [a.addr_spec for a in written["To"].addresses] == ["qa@example.com"]
