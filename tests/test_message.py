"""EmailMessage / EmailMultiAlternatives: structure, encodings, and header rules."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage as StdMessage
from email.message import MIMEPart
from email.utils import make_msgid

import pytest

import mailout
from mailout import EmailAlternative, EmailAttachment, EmailMessage, EmailMultiAlternatives
from mailout.utils import DNS_NAME
from mailout.wireform import serialize


def wire(message: EmailMessage) -> StdMessage:
    """The message as a receiver parses it from its SMTP bytes."""
    data = serialize(message.message(), smtputf8=message.needs_smtputf8())
    assert b"\n" not in data.replace(b"\r\n", b"")  # CRLF only
    assert all(len(line) <= 998 for line in data.split(b"\r\n"))
    # Parsed as a mail client stores it, with "\n" line ends, so text contents compare.
    data = data.replace(b"\r\n", b"\n")
    return email.message_from_bytes(data, policy=email.policy.default)  # type: ignore[return-value]


def test_positional_order_of_the_reference_text() -> None:
    message = EmailMessage(
        "Hello",
        "Body goes here",
        "from@example.com",
        ["to1@example.com", "to2@example.com"],
        ["bcc@example.com"],
        None,
        [("a.txt", "x", "text/plain")],
        {"Reply-To": "another@example.com"},
        ["cc@example.com"],
        ["reply@example.com"],
    )
    assert message.bcc == ["bcc@example.com"]
    assert message.cc == ["cc@example.com"]
    assert message.recipients() == [
        "to1@example.com",
        "to2@example.com",
        "cc@example.com",
        "bcc@example.com",
    ]
    parsed = wire(message)
    assert parsed["Reply-To"] == "another@example.com"  # headers override reply_to
    assert parsed["Cc"] == "cc@example.com"
    assert "Bcc" not in parsed


def test_multi_alternatives_positional_order_keeps_alternatives_before_cc() -> None:
    message = EmailMultiAlternatives(
        "s", "b", "f@example.com", ["t@example.com"], None, None, None, None,
        [("<p>b</p>", "text/html")], ["cc@example.com"],
    )  # fmt: skip
    assert message.alternatives == [EmailAlternative("<p>b</p>", "text/html")]
    assert message.cc == ["cc@example.com"]


@pytest.mark.parametrize("header", ["To", "Cc", "From", "Reply-To", "Date", "Message-ID"])
def test_headers_override(header: str) -> None:
    values = {
        "To": "override@example.com",
        "Cc": "cc-override@example.com",
        "From": "Other <other@example.com>",
        "Reply-To": "r@example.com",
        "Date": "Mon, 01 Jan 2024 00:00:00 -0000",
        "Message-ID": "<fixed@example.com>",
    }
    message = EmailMessage(
        "s", "b", "f@example.com", ["t@example.com"], cc=["c@example.com"],
        headers={header: values[header]},
    )  # fmt: skip
    parsed = wire(message)
    assert parsed[header] == values[header]
    assert len(parsed.get_all(header) or []) == 1
    # The envelope is unchanged by header overrides.
    assert message.recipients() == ["t@example.com", "c@example.com"]


def test_date_and_message_id() -> None:
    parsed = wire(EmailMessage("s", "b", "f@example.com", ["t@example.com"]))
    assert parsed["Message-ID"].endswith(f"@{DNS_NAME}>")
    assert parsed["Date"].datetime is not None
    assert str(DNS_NAME) == DNS_NAME.get_fqdn()


def test_localtime(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    mailout.configure({"EMAIL_USE_LOCALTIME": True})
    parsed = wire(EmailMessage("s", "b", "f@example.com", ["t@example.com"]))
    assert parsed["Date"].endswith("+0000")


def test_non_ascii_everywhere_is_encoded() -> None:
    message = EmailMessage(
        "Größe ☃", "Grüße\n", "Jürgen <j@bücher.example>", ["Zoë <z@example.com>"]
    )
    data = serialize(message.message())
    head = data.split(b"\r\n\r\n")[0]
    assert head.isascii()  # RFC 2047 words and IDNA: headers stay 7-bit
    assert b"xn--bcher-kva.example" in head
    parsed = wire(message)
    assert parsed["Subject"] == "Größe ☃"
    assert parsed["From"].addresses[0].display_name == "Jürgen"
    assert parsed.get_content() == "Grüße\n"


def test_default_charset_setting() -> None:
    mailout.configure({"DEFAULT_CHARSET": "iso-8859-1"})
    message = EmailMessage("s", "café\n", "f@example.com", ["t@example.com"])
    parsed = wire(message)
    assert parsed.get_content_charset() == "iso-8859-1"
    assert parsed.get_content() == "café\n"
    message.encoding = "utf-8"
    assert wire(message).get_content_charset() == "utf-8"


def test_long_lines_get_a_safe_transfer_encoding() -> None:
    body = "word " * 400 + "\n"
    parsed = wire(EmailMessage("s", body, "f@example.com", ["t@example.com"]))
    assert parsed["Content-Transfer-Encoding"] in ("quoted-printable", "base64")
    assert parsed.get_content() == body


def test_content_subtype_html() -> None:
    message = EmailMessage("s", "<p>hi</p>", "f@example.com", ["t@example.com"])
    message.content_subtype = "html"
    assert wire(message).get_content_type() == "text/html"


def test_alternatives_and_body_contains() -> None:
    message = EmailMultiAlternatives("s", "Hello plain", "f@example.com", ["t@example.com"])
    message.attach_alternative("<p>Hello html</p>", "text/html")
    message.attach_alternative(b"\x00binary", "application/x-thing")
    assert message.body_contains("Hello")
    assert not message.body_contains("plain")
    parsed = wire(message)
    assert parsed.get_content_type() == "multipart/alternative"
    types = [p.get_content_type() for p in parsed.iter_parts()]
    assert types == ["text/plain", "text/html", "application/x-thing"]
    with pytest.raises(ValueError, match="Both content and mimetype must be provided"):
        message.attach_alternative(None, "text/html")  # type: ignore[arg-type]


def test_attach_guesses_type_and_keeps_bytes() -> None:
    message = EmailMessage("s", "b", "f@example.com", ["t@example.com"])
    message.attach("design.png", b"\x89PNG\r\n\x1a\n\x00")
    message.attach("unknown.zzz-nope", b"\x01")
    message.attach("latin.txt", b"caf\xe9")  # not UTF-8: sent as exact bytes
    assert message.attachments[0] == EmailAttachment(
        "design.png", b"\x89PNG\r\n\x1a\n\x00", "image/png"
    )
    parsed = wire(message)
    parts = list(parsed.iter_attachments())
    assert [p.get_content_type() for p in parts] == [
        "image/png",
        "application/octet-stream",
        "application/octet-stream",
    ]
    assert parts[0].get_content() == b"\x89PNG\r\n\x1a\n\x00"
    assert parts[2].get_content() == b"caf\xe9"


def test_attach_file(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "report.csv"
    path.write_text("a,b\n1,2\n")
    message = EmailMessage("s", "b", "f@example.com", ["t@example.com"])
    message.attach_file(path)
    [part] = wire(message).iter_attachments()
    assert part.get_filename() == "report.csv"
    assert part.get_content_type() == "text/csv"
    assert part.get_content() == "a,b\n1,2\n"


def test_non_ascii_attachment_filename_uses_rfc2231() -> None:
    message = EmailMessage("s", "b", "f@example.com", ["t@example.com"])
    message.attach("relatório anual.pdf", b"%PDF", "application/pdf")
    data = serialize(message.message())
    assert b"filename*=utf-8''relat%C3%B3rio%20anual.pdf" in data
    [part] = wire(message).iter_attachments()
    assert part.get_filename() == "relatório anual.pdf"


def test_inline_image_with_mime_part_and_related_subtype() -> None:
    cid = make_msgid(domain="example.com")
    image = MIMEPart()
    image.set_content(b"\x89PNG", maintype="image", subtype="png", disposition="inline", cid=cid)
    message = EmailMultiAlternatives("s", "b", "f@example.com", ["t@example.com"])
    message.attach_alternative(f'<img src="cid:{cid[1:-1]}">', "text/html")
    message.attach(image)
    message.mixed_subtype = "related"
    parsed = wire(message)
    assert parsed.get_content_type() == "multipart/related"
    inline = next(p for p in parsed.walk() if p.get_content_type() == "image/png")
    assert inline["Content-ID"] == cid
    assert inline.get_content_disposition() == "inline"


def test_message_rfc822_attachment() -> None:
    inner = EmailMessage("Inner", "inner body", "a@example.com", ["b@example.com"])
    message = EmailMessage("Outer", "b", "f@example.com", ["t@example.com"])
    message.attach(None, inner, "message/rfc822")
    [part] = wire(message).iter_attachments()
    assert part.get_content_type() == "message/rfc822"
    assert part.get_content()["Subject"] == "Inner"


def test_smtputf8_needed_only_for_non_ascii_local_part() -> None:
    assert not EmailMessage("s", "b", "Zoë <z@bücher.example>", ["t@example.com"]).needs_smtputf8()
    message = EmailMessage("s", "b", "f@example.com", ["josé@example.com"])
    assert message.needs_smtputf8()
    data = serialize(message.message(), smtputf8=True)
    assert "To: josé@example.com".encode() in data


def test_from_defaults_to_default_from_email() -> None:
    mailout.configure({"DEFAULT_FROM_EMAIL": "noreply@example.com"})
    assert EmailMessage("s", "b", to=["t@example.com"]).from_email == "noreply@example.com"


def test_message_can_be_subclassed_and_overridden() -> None:
    class Tagged(EmailMessage):
        def message(self, **kwargs: object) -> StdMessage:
            msg = super().message()
            msg["X-Tag"] = "custom"
            return msg

    mailout.configure({"EMAIL_BACKEND": "mailout.backends.locmem.EmailBackend"})
    Tagged("s", "b", "f@example.com", ["t@example.com"]).send()
    assert mailout.outbox[0].message()["X-Tag"] == "custom"


def test_legacy_safe_mime_classes_refuse_newlines() -> None:
    text = mailout.SafeMIMEText("body")
    with pytest.raises(mailout.BadHeaderError):
        text["Subject"] = "a\nb"
    multipart = mailout.SafeMIMEMultipart()
    multipart["Subject"] = "ok"
    assert multipart["Subject"] == "ok"
