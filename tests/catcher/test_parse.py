"""parse: decoded headers, bodies, attachments and the MIME tree; never raises on bad mail."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mailout.catcher import parse
from mailout.demo import PDF, PNG, demo_message


def demo_raw() -> bytes:
    return demo_message().message().as_bytes().replace(b"\n", b"\r\n")


def test_demo_message_details() -> None:
    raw = demo_raw()
    info = parse.details(raw)
    assert ("Subject", "Your invoice from mailout ☕") in info.headers
    assert info.text is not None
    assert "Hello Ana" in info.text
    assert "\r" not in info.text
    assert info.html is not None
    assert "<strong>attached</strong>" in info.html
    logo, pdf = info.attachments
    assert (logo.content_type, logo.inline, logo.size) == ("image/png", True, len(PNG))
    assert logo.content_id is not None
    assert (pdf.filename, pdf.inline, pdf.content_id) == ("invoice-2026-11.pdf", False, None)
    assert parse.attachment(raw, pdf.index) == ("application/pdf", "invoice-2026-11.pdf", PDF)
    assert parse.attachment(raw, 99) is None
    assert parse.by_content_id(raw, f"cid:{logo.content_id}") == ("image/png", PNG)
    assert parse.by_content_id(raw, f"<{logo.content_id}>") == ("image/png", PNG)
    assert parse.by_content_id(raw, "cid:nothing@here") is None
    paths = [p["path"] for p in info.parts]
    assert paths[0] == ""
    assert "1" in paths
    assert {p["content_type"] for p in info.parts} >= {"text/plain", "text/html", "image/png"}
    summary = parse.summarize(raw)
    assert summary["attachments"] == 1  # the PDF; the inline logo is part of the HTML
    assert summary["subject"] == "Your invoice from mailout ☕"


def test_single_part_and_missing_headers() -> None:
    summary = parse.summarize(b"\r\njust a body\r\n")
    assert (summary["subject"], summary["from_header"], summary["attachments"]) == ("", "", 0)
    assert parse.details(b"Subject: x\r\n\r\nhi\r\n").text == "hi\n"


def test_unknown_charset_degrades() -> None:
    raw = b"Content-Type: text/plain; charset=x-nonsense\r\nSubject: =?x-bad?q?a?=\r\n\r\nh\xe9\r\n"
    info = parse.details(raw)
    assert info.text is not None
    assert info.text.startswith("h")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600))
def test_never_raises_on_arbitrary_bytes(raw: bytes) -> None:
    parse.summarize(raw)
    info = parse.details(raw)
    for item in info.attachments:
        assert parse.attachment(raw, item.index) is not None
    parse.by_content_id(raw, "x")


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                b"Content-Type: multipart/mixed; boundary=",
                b"--",
                b"\r\n",
                b"b",
                b"Content-ID: <x>",
                b"Content-Transfer-Encoding: base64",
                b"Content-Disposition: attachment; filename*=",
                b"=?utf-8?b?",
                b"message/rfc822",
                b"text/html",
                b": ",
                b"\xff",
            ]
        ),
        max_size=40,
    )
)
def test_never_raises_on_mime_like_garbage(pieces: list[bytes]) -> None:
    raw = b"".join(pieces)
    parse.summarize(raw)
    parse.details(raw)
