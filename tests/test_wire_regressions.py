"""The bytes that went out wrong before Django 6.1 conformance (issue 8), each sent through a
real SMTP server (aiosmtpd on loopback) and checked as it arrived: decoded and raw.

Every case runs twice: through the fast serialiser, and through the standard-library path (a
subclass that overrides ``message()`` is always sent that way), since both must be right.
"""

from __future__ import annotations

import base64
import datetime
import email
import email.policy
import io
import re
from email.message import EmailMessage as StdMessage
from typing import Any

import pytest

import mailout
from mailout import EmailMessage, EmailMultiAlternatives
from mailout.backends import console
from mailout.backends.smtp import EmailBackend
from mailout.exceptions import BadHeaderError, InvalidMessageError
from tests.conftest import SMTPServer


class StdlibPath(EmailMultiAlternatives):
    """Sent through the standard library: the fast path never renders an overridden message()."""

    def message(self, *, policy: Any = email.policy.default) -> StdMessage:
        return super().message(policy=policy)


PATHS = {"fast": EmailMultiAlternatives, "stdlib": StdlibPath}


@pytest.fixture(params=sorted(PATHS))
def make(request: pytest.FixtureRequest) -> Any:
    cls = PATHS[request.param]

    def make(body: str = "Body.\n", **kwargs: Any) -> EmailMultiAlternatives:
        kwargs.setdefault("to", ["to@example.com"])
        return cls("Subject", body, "from@example.com", **kwargs)

    return make


def send(server: SMTPServer, message: EmailMessage) -> tuple[StdMessage, bytes]:
    """Send ``message`` over SMTP; return what the server got, parsed and raw (CRLF kept).

    Parsed as a mail client stores it, with "\n" line ends (what is inside base64 is kept).
    """
    with EmailBackend(host=server.host, port=server.port) as backend:
        assert backend.send_messages([message]) == 1
    (received,) = server.received
    assert received.data.count(b"\n") == received.data.count(b"\r\n")
    data = received.data.replace(b"\r\n", b"\n")
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(parsed, StdMessage)
    return parsed, received.data


def leaves(message: StdMessage) -> list[StdMessage]:
    return [part for part in message.walk() if not part.is_multipart()]  # type: ignore[misc]


# 1 -----------------------------------------------------------------------------------------


def test_bcc_in_headers_is_refused_and_nothing_is_sent(make: Any, smtp_server: SMTPServer) -> None:
    message = make(headers={"Bcc": "secret@example.com"})
    with pytest.raises(InvalidMessageError, match='Use the "bcc" argument') as caught:
        send(smtp_server, message)
    assert isinstance(caught.value, ValueError)
    assert "Bcc is not a valid email header" in str(caught.value)
    assert smtp_server.received == []
    # The bcc= argument is the way: in the envelope, in no header.
    parsed, raw = send(smtp_server, make(bcc=["secret@example.com"]))
    assert smtp_server.received[0].rcpt_tos == ["to@example.com", "secret@example.com"]
    assert b"secret@" not in raw
    assert "Bcc" not in parsed


# 2 -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attach", "mimetype", "payload"),
    [
        (("data.json", '{"a": "é"}', "application/json"), "application/json", '{"a": "é"}'),
        (("doc.pdf", "%PDF-1.4", "application/pdf"), "application/pdf", "%PDF-1.4"),
        (("f", "c"), "application/octet-stream", "c"),  # the type guessed: none from "f"
    ],
)
def test_attachment_types_are_kept_for_text_content(
    make: Any, smtp_server: SMTPServer, attach: tuple[str, ...], mimetype: str, payload: str
) -> None:
    parsed, raw = send(smtp_server, make(attachments=[attach]))
    (attachment,) = parsed.iter_attachments()
    assert attachment.get_content_type() == mimetype
    assert attachment.get_payload(decode=True) == payload.encode()  # UTF-8, as Django sends
    assert f"Content-Type: {mimetype}".encode() in raw
    assert b"text/" + mimetype.partition("/")[2].encode() not in raw


@pytest.mark.parametrize(
    ("content", "mimetype"),
    [
        ("<svg>é</svg>", "image/svg+xml"),
        ("{\\rtf1 caf\\'e9}", "application/x-ccmail-rtf"),
        (b"non-text\x07bytes", "application/x-ccmail-rtf"),
    ],
)
def test_alternative_types_are_kept(
    make: Any, smtp_server: SMTPServer, content: str | bytes, mimetype: str
) -> None:
    message = make()
    message.attach_alternative(content, mimetype)
    parsed, raw = send(smtp_server, message)
    assert parsed.get_content_type() == "multipart/alternative"
    plain, alternative = parsed.get_payload()  # type: ignore[misc]
    assert plain.get_content_type() == "text/plain"
    assert alternative.get_content_type() == mimetype
    expected = content.encode() if isinstance(content, str) else content
    assert alternative.get_payload(decode=True) == expected
    assert f"Content-Type: {mimetype}\r\n".encode() in raw


# 3 -----------------------------------------------------------------------------------------


def test_text_bytes_go_out_as_text_with_a_charset(make: Any, smtp_server: SMTPServer) -> None:
    message = make()
    message.attach_alternative(b"<p>caf\xc3\xa9</p>", "text/html")
    message.attach("notes.txt", "naïve\n".encode())  # decoded by attach()
    message.attachments.append(("raw.txt", "ünï\n".encode(), "text/plain"))  # and when sent
    message.attachments.append(("bin.txt", b"\x86\xff not utf-8", "text/plain"))
    parsed, raw = send(smtp_server, message)
    html = parsed.get_body(("html",))
    assert html is not None
    assert html["Content-Type"].params == {"charset": "utf-8"}
    assert html.get_content() == "<p>café</p>\n"
    notes, raw_txt, binary = parsed.iter_attachments()
    assert (notes.get_content_type(), notes.get_content()) == ("text/plain", "naïve\n")
    assert (raw_txt.get_content_type(), raw_txt.get_content()) == ("text/plain", "ünï\n")
    assert notes.get_param("charset") == raw_txt.get_param("charset") == "utf-8"
    # Bytes that are not UTF-8 are not text: relabelled, they arrive byte for byte.
    assert binary.get_content_type() == "application/octet-stream"
    assert binary.get_payload(decode=True) == b"\x86\xff not utf-8"
    assert raw.count(b'Content-Type: text/html; charset="utf-8"') == 1
    assert raw.count(b'Content-Type: text/plain; charset="utf-8"') == 3  # the body, two files


# 4 -----------------------------------------------------------------------------------------


def test_datetime_in_date_header(make: Any, smtp_server: SMTPServer) -> None:
    when = datetime.datetime(2001, 11, 9, 1, 8, 47, tzinfo=datetime.UTC)
    message = make(headers={"Date": when})
    expected = "Fri, 09 Nov 2001 01:08:47 +0000"
    parsed, raw = send(smtp_server, message)
    assert parsed["Date"] == expected
    assert parsed["Date"].datetime == when
    assert re.findall(rb"(?m)^Date: (.*)\r$", raw) == [expected.encode()]
    assert f"Date: {expected}\n".encode() in message.message().as_bytes()
    stream = io.StringIO()
    console.EmailBackend(stream=stream).send_messages([message])
    assert f"\nDate: {expected}\n" in stream.getvalue()


# 5 -----------------------------------------------------------------------------------------


def test_default_date_is_utc_written_plus_0000(make: Any, smtp_server: SMTPServer) -> None:
    before = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    parsed, raw = send(smtp_server, make())
    (date,) = re.findall(rb"(?m)^Date: (.*)\r$", raw)
    assert date.endswith(b" +0000")  # RFC 5322 §3.3; "-0000" means "zone unknown"
    sent = parsed["Date"].datetime
    assert sent.utcoffset() == datetime.timedelta(0)
    assert before <= sent <= datetime.datetime.now(datetime.UTC)


def test_localtime_date_uses_time_zone(make: Any, smtp_server: SMTPServer) -> None:
    mailout.configure({"EMAIL_USE_LOCALTIME": True, "TIME_ZONE": "Africa/Algiers"})
    parsed, raw = send(smtp_server, make())
    assert re.search(rb"(?m)^Date: .* \+0100\r$", raw)  # UTC+1 all year round
    assert parsed["Date"].datetime.utcoffset() == datetime.timedelta(hours=1)


# 6 -----------------------------------------------------------------------------------------


def test_empty_body_is_left_out_next_to_alternatives(make: Any, smtp_server: SMTPServer) -> None:
    message = make(body="")
    message.attach_alternative("<p>Only HTML</p>", "text/html")
    parsed, raw = send(smtp_server, message)
    assert [p.get_content_type() for p in leaves(parsed)] == ["text/html"]
    assert parsed.get_body(("plain", "html")).get_content() == "<p>Only HTML</p>\n"  # type: ignore[union-attr]
    assert b"text/plain" not in raw


def test_empty_body_is_left_out_next_to_attachments(make: Any, smtp_server: SMTPServer) -> None:
    message = make(body="")
    message.attach("report.pdf", b"%PDF-1.4", "application/pdf")
    parsed, raw = send(smtp_server, message)
    assert parsed.get_content_type() == "multipart/mixed"
    assert [p.get_content_type() for p in leaves(parsed)] == ["application/pdf"]
    assert b"text/plain" not in raw
    # A body that is there stays, and an empty message keeps its (empty) text part.
    smtp_server.received.clear()
    parsed, _ = send(smtp_server, make(body=""))
    assert (parsed.get_content_type(), parsed.get_content()) == ("text/plain", "\n")


# 7 -----------------------------------------------------------------------------------------


def test_base64_text_is_in_canonical_form(make: Any, smtp_server: SMTPServer) -> None:
    body = ("Ю южных морях " * 60 + "\n") * 3  # long non-Latin lines: base64 is smaller
    message = make(body=body)
    message.attach_alternative(body.replace("\n", "<br>\n"), "text/html")
    message.attach("long.txt", body, "text/plain")
    parsed, raw = send(smtp_server, message)
    texts = [p for p in leaves(parsed) if p.get_content_maintype() == "text"]
    assert len(texts) == 3
    for part in texts:
        assert part["Content-Transfer-Encoding"] == "base64"
        decoded = part.get_payload(decode=True)
        # RFC 2045 §6.8: line breaks in canonical form are CRLF, as Django 6.1's smtp backend
        # (message(policy=SMTP)) sends them; no bare LF.
        assert decoded.count(b"\r\n") == decoded.count(b"\n") == 3
        assert decoded.decode().replace("\r\n", "\n") in (body, body.replace("\n", "<br>\n"))
    # Raw: the first base64 line of the body decodes to text of that body.
    first = raw.split(b"Content-Transfer-Encoding: base64\r\n\r\n", 1)[1].split(b"\r\n", 1)[0]
    assert base64.b64decode(first).decode("utf-8", "ignore").startswith("Ю южных")


# Found after the seven: "=" the only byte to escape -----------------------------------------


def test_an_equals_sign_survives_quoted_printable(make: Any, smtp_server: SMTPServer) -> None:
    body = "total=42 " + "x" * 80 + "=\n"  # long ASCII line: quoted-printable, "=" at the end
    parsed, raw = send(smtp_server, make(body=body))
    assert parsed["Content-Transfer-Encoding"] == "quoted-printable"
    assert b"total=3D42" in raw
    assert parsed.get_content() == body


# Found by tests/security (test_extra_header_value): spaces between encoded words -------------


@pytest.mark.parametrize(
    "value",
    [
        "x" * 70 + " é é",  # the fast path takes it: the stdlib path dropped the second space
        "x" * 70 + " \x80 é",  # a control character: every path falls back to the stdlib
        "日本 " * 30 + "end",
        "a»    Í\x07Î " * 8,  # a run of spaces between two encoded words, folded
    ],
)
@pytest.mark.parametrize("name", ["Subject", "X-Custom"])
def test_spaces_between_encoded_words_survive_folding(
    make: Any, smtp_server: SMTPServer, name: str, value: str
) -> None:
    """CPython gh-144156: the standard library's folder can leave the whitespace between two
    words it encodes outside the encoded words, where a reader drops it (RFC 2047 §6.2)."""
    parsed, _ = send(smtp_server, make(headers={name: value}))
    assert str(parsed[name]).strip() == value.strip()  # whitespace around it means nothing


# Found next to it: a display name the stdlib's folder split without its quotes -------------


@pytest.mark.parametrize(("field", "header"), [("to", "To"), ("reply_to", "Reply-To")])
def test_a_long_display_name_with_a_comma_stays_one_mailbox(
    make: Any, smtp_server: SMTPServer, field: str, header: str
) -> None:
    """CPython gh-80222: the folder dropped the quotes of a display name it split, so
    ``"x…x, evil@attacker.example" <support@example.com>`` arrived as two mailboxes, one of
    them an address nobody gave (where a reply would go)."""
    name = "x" * 70 + ", evil@attacker.example"
    parsed, raw = send(smtp_server, make(**{field: [(name, "support@example.com")]}))
    mailboxes = [(a.display_name, a.addr_spec) for a in parsed[header].addresses]
    assert mailboxes == [(name, "support@example.com")]
    assert b"evil@attacker.example" in raw  # inside the quoted name, nowhere else
    assert all(b"evil" not in r.encode() for r in smtp_server.received[0].rcpt_tos)


def test_an_address_field_neither_path_can_write_is_refused(
    make: Any, smtp_server: SMTPServer
) -> None:
    """The stdlib would write it as two mailboxes and mailout's writer takes no control
    character in a name: a clear error naming the field, and nothing sent."""
    name = "x" * 40 + "\x01\x01" + "x" * 40 + ", \x01\x01"
    with pytest.raises(BadHeaderError, match="To: the standard library would write"):
        send(smtp_server, make(to=[(name, "to@example.com")]))
    assert smtp_server.received == []
