"""Fast-path bytes sent through real SMTP (aiosmtpd on loopback) arrive as the stdlib's would."""

from __future__ import annotations

import pytest

from mailout import wire
from mailout.address import parse_address
from mailout.message import EmailMessage
from mailout.smtp import Envelope, SMTPClient
from mailout.wireform import build, serialize
from tests.conftest import SMTPServer
from tests.wire.cases import ATTACHMENTS, make
from tests.wire.compare import describe


def _messages() -> list[EmailMessage]:
    everything = make("alternatives", subject="Ünï subject", to=["Jöhn <j@bücher.example>"])
    everything.attachments.extend(ATTACHMENTS[:4])
    long_lines = make(body="x" * 300 + "\n.\n..leading dots\n", subject="word " * 40)
    utf8 = make(to=["jürgen@example.de"], subject="SMTPUTF8 ünï")
    return [make(), everything, long_lines, utf8, make(body="")]


@pytest.mark.parametrize("message", _messages())
def test_sent_over_smtp(smtp_server: SMTPServer, message: EmailMessage) -> None:
    smtputf8 = message.needs_smtputf8()
    data = wire.render(message, smtputf8=smtputf8)
    sender = parse_address(message.from_email, field="from_email").addr_spec
    rcpts = tuple(parse_address(r, field="to").addr_spec for r in message.recipients())
    envelope = Envelope(sender, rcpts, smtputf8=smtputf8, eight_bit=not data.isascii())
    with SMTPClient(smtp_server.host, smtp_server.port) as client:
        client.send(envelope, data)
    (received,) = smtp_server.received
    assert received.data.replace(b"\r\n", b"\n") == data.replace(b"\r\n", b"\n")
    slow = serialize(build(message, smtputf8=smtputf8), smtputf8=smtputf8)
    assert describe(received.data) == describe(slow)
