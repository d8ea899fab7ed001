"""mailout's SMTP backend against the real Postfix (skipped where Postfix cannot run).

What lands in Postfix's Maildir is compared with what was sent: headers, decoded body and
attachment bytes, over plain SMTP and STARTTLS, through the pool, and with SMTPUTF8.
"""

from __future__ import annotations

import email
import email.policy
import time
import uuid
from collections.abc import Iterator
from email.message import EmailMessage as StdMessage
from pathlib import Path

import pytest

import mailout
from mailout.backends.smtp import EmailBackend
from mailout.exceptions import RecipientsRefusedError
from mailout.smtp import SendResult, SMTPClient
from tests.servers.postfix import PostfixServer, postfix_missing

pytestmark = pytest.mark.skipif(postfix_missing() is not None, reason=str(postfix_missing()))

PDF = bytes(range(256)) * 40  # every byte value: binary must survive the round trip


@pytest.fixture(scope="module")
def pf() -> Iterator[PostfixServer]:
    with PostfixServer() as server:
        yield server


@pytest.fixture(scope="module")
def ca_path(pf: PostfixServer, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("postfix-ca") / "ca.pem"
    pf.ca.cert_pem.write_to_path(str(path))
    return str(path)


def parse(raw: bytes) -> StdMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)


def delivered(
    pf: PostfixServer, tag: str, count: int = 1, timeout: float = 15.0
) -> list[StdMessage]:
    """The messages whose X-Test-Tag is `tag`, once `count` of them are in the Maildir."""
    deadline = time.monotonic() + timeout
    while True:
        found = [m for m in map(parse, pf.messages()) if m["X-Test-Tag"] == tag]
        if len(found) >= count:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{len(found)} of {count} messages tagged {tag} delivered; "
                f"log:\n{pf.log_text()[-3000:]}"
            )
        time.sleep(0.02)


def new_tag() -> str:
    return uuid.uuid4().hex


def backend(pf: PostfixServer, **options: object) -> EmailBackend:
    options.setdefault("timeout", 10.0)
    return EmailBackend(host=pf.host, port=pf.port, **options)  # type: ignore[arg-type]


def rich_message(tag: str, tmp_path: Path) -> mailout.EmailMultiAlternatives:
    path = tmp_path / "notes.txt"
    path.write_text("line one\nline two: café\n", encoding="utf-8")
    message = mailout.EmailMultiAlternatives(
        "Quarterly report, ünïcödé",
        "Hello Bob,\n.a line starting with a dot\nnon-ASCII: naïve café ☕\n",
        "Alice <alice@example.org>",
        ["Bob <bob@example.test>"],
        cc=["carol@example.test"],
        bcc=["dave@example.test"],
        reply_to=["replies@example.org"],
        headers={"X-Test-Tag": tag},
    )
    message.attach_alternative("<p>Hello <b>Bob</b></p>", "text/html")
    message.attach("report.pdf", PDF, "application/pdf")
    message.attach_file(path)
    return message


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "starttls"])
def test_message_with_attachments_arrives_intact(
    pf: PostfixServer, ca_path: str, tmp_path: Path, tls: bool
) -> None:
    tag = new_tag()
    b = backend(pf, use_tls=True, ssl_cafile=ca_path) if tls else backend(pf)
    assert b.send_messages([rich_message(tag, tmp_path)]) == 1
    [result] = b.results
    assert isinstance(result, SendResult)
    assert set(result.accepted) == {"bob@example.test", "carol@example.test", "dave@example.test"}

    # One Maildir for every example.test recipient: one copy each of bob, carol and dave.
    copies = delivered(pf, tag, count=3)
    assert sorted(m["Delivered-To"] for m in copies) == [
        "bob@example.test",
        "carol@example.test",
        "dave@example.test",
    ]
    got = copies[0]
    assert ("with ESMTPS" in got["Received"]) is tls
    assert got["Subject"] == "Quarterly report, ünïcödé"
    assert got["From"] == "Alice <alice@example.org>"
    assert got["To"] == "Bob <bob@example.test>"
    assert got["Cc"] == "carol@example.test"
    assert got["Reply-To"] == "replies@example.org"
    assert all(m["Bcc"] is None for m in copies)  # Bcc: envelope only, never a header
    body = got.get_body(("plain",))
    html = got.get_body(("html",))
    assert body is not None
    assert html is not None
    assert body.get_content() == (
        "Hello Bob,\n.a line starting with a dot\nnon-ASCII: naïve café ☕\n"
    )
    # A text part always ends with a line break once serialised (the stdlib adds it).
    assert html.get_content().rstrip("\n") == "<p>Hello <b>Bob</b></p>"
    attachments = {a.get_filename(): a for a in got.iter_attachments()}
    assert set(attachments) == {"report.pdf", "notes.txt"}
    assert attachments["report.pdf"].get_content_type() == "application/pdf"
    assert attachments["report.pdf"].get_content() == PDF
    assert attachments["notes.txt"].get_content() == ("line one\nline two: café\n")


def test_starttls_is_used_and_required(pf: PostfixServer, ca_path: str) -> None:
    client = SMTPClient(pf.host, pf.port, use_tls=True, ssl_cafile=ca_path, timeout=10.0)
    client.connect()
    try:
        assert "STARTTLS" not in client.extensions  # RFC 3207 §4.2: not offered twice
        assert "PIPELINING" in client.extensions
    finally:
        client.close()


def test_many_messages_through_the_pool(pf: PostfixServer) -> None:
    tag = new_tag()
    count = 120
    messages = [
        mailout.EmailMessage(
            f"bulk {i}",
            f"message number {i}\n",
            "bulk@example.org",
            [f"user{i}@example.test"],
            headers={"X-Test-Tag": tag},
        )
        for i in range(count)
    ]
    b = backend(pf, pool_size=3)
    assert b.send_messages(messages) == count
    assert all(isinstance(r, SendResult) for r in b.results)
    got = delivered(pf, tag, count=count, timeout=30.0)
    assert len(got) == count
    assert sorted(m["Subject"] for m in got) == sorted(f"bulk {i}" for i in range(count))
    for m in got:
        number = m["Subject"].split()[1]
        assert m["Delivered-To"] == f"user{number}@example.test"
        assert m.get_content() == f"message number {number}\n"


def test_smtputf8_address(pf: PostfixServer) -> None:
    client = SMTPClient(pf.host, pf.port, timeout=10.0)
    client.connect()
    try:
        offered = client.extensions.smtputf8
    finally:
        client.close()
    if not offered:
        pytest.skip("this Postfix does not offer SMTPUTF8 (smtputf8_enable = no)")
    tag = new_tag()
    message = mailout.EmailMessage(
        "SMTPUTF8 test",
        "body\n",
        "josé@example.org",
        ["用户@example.test"],
        headers={"X-Test-Tag": tag},
    )
    b = backend(pf)
    assert b.send_messages([message]) == 1
    [got] = delivered(pf, tag)
    assert got["To"] == "用户@example.test"
    assert got["From"] == "josé@example.org"
    assert got["Delivered-To"] == "用户@example.test"
    assert "with UTF8SMTP" in got["Received"]  # Postfix's mark for an SMTPUTF8 session


def test_relay_refusal_is_transient(pf: PostfixServer) -> None:
    tag = new_tag()
    refused_only = mailout.EmailMessage(
        "s", "b", "a@example.org", ["eve@elsewhere.test"], headers={"X-Test-Tag": tag}
    )
    b = backend(pf)
    with pytest.raises(RecipientsRefusedError) as caught:
        b.send_messages([refused_only])
    error = caught.value
    assert error.reply.code == 454
    assert error.is_transient
    assert error.reply.enhanced == "4.7.1"
    assert "Relay access denied" in error.reply.text
    assert set(error.refused) == {"eve@elsewhere.test"}

    # Mixed: the local recipient gets it, the relay one is reported in results.
    mixed = mailout.EmailMessage(
        "mixed",
        "b",
        "a@example.org",
        ["bob@example.test", "eve@elsewhere.test"],
        headers={"X-Test-Tag": tag},
    )
    assert b.send_messages([mixed]) == 1
    [result] = b.results
    assert isinstance(result, SendResult)
    assert set(result.refused) == {"eve@elsewhere.test"}
    assert result.refused["eve@elsewhere.test"].is_transient
    [got] = delivered(pf, tag)
    assert got["Subject"] == "mixed"
