"""A throwaway real Postfix receives mail on loopback (skipped where Postfix is missing)."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from email import message_from_bytes

import pytest

from tests.servers.postfix import PostfixServer, postfix_missing
from tests.servers.wire import RawClient

pytestmark = pytest.mark.skipif(postfix_missing() is not None, reason=str(postfix_missing()))


@pytest.fixture(scope="module")
def postfix() -> Iterator[PostfixServer]:
    with PostfixServer() as pf:
        yield pf


def test_smtplib_over_starttls_delivers_to_the_maildir(postfix: PostfixServer) -> None:
    before = len(postfix.messages())
    with smtplib.SMTP(postfix.host, postfix.port, timeout=10) as smtp:
        smtp.starttls(context=postfix.client_context())
        refused = smtp.sendmail(
            "a@example.org",
            ["bob@example.test", "eve@elsewhere.test"],
            b"Subject: hello\r\n\r\n.leading dot\r\n",
        )
    assert refused == {
        "eve@elsewhere.test": (454, b"4.7.1 <eve@elsewhere.test>: Relay access denied")
    }
    delivered = message_from_bytes(postfix.wait_for_messages(before + 1)[-1])
    assert delivered["Delivered-To"] == "bob@example.test"
    assert delivered["Subject"] == "hello"
    assert "with ESMTPS" in delivered["Received"]
    assert delivered.get_payload() == ".leading dot\n"


def test_pipelining_and_bdat_on_the_wire(postfix: PostfixServer) -> None:
    before = len(postfix.messages())
    with RawClient(postfix.host, postfix.port) as raw:
        assert raw.reply()[0] == 220
        raw.send(b"EHLO c\r\n")
        code, lines = raw.reply()
        assert code == 250
        assert {"PIPELINING", "CHUNKING", "SMTPUTF8", "STARTTLS"} <= set(lines)
        raw.send(
            b"MAIL FROM:<a@example.org>\r\nRCPT TO:<carol@example.test>\r\n"
            b"BDAT 14 LAST\r\nSubject: x\r\n\r\nQUIT\r\n"
        )
        assert raw.codes(4) == [250, 250, 250, 221]
    assert b"carol@example.test" in postfix.wait_for_messages(before + 1)[-1]


def test_relay_mode_accepts_and_discards() -> None:
    with PostfixServer(relay=True, tls=False) as pf, smtplib.SMTP(pf.host, pf.port) as smtp:
        assert smtp.sendmail("a@example.org", ["x@elsewhere.test"], b"Subject: x\r\n\r\n") == {}
        assert not smtp.has_extn("starttls")
        assert pf.messages() == []
