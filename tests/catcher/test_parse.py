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


# -- bounded work ----------------------------------------------------------------------------------


def multipart(count: int) -> bytes:
    parts = b"".join(b"--b\r\nContent-Type: text/plain\r\n\r\np%d\r\n" % i for i in range(count))
    return b"Subject: s\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" + parts + b"--b--\r\n"


def nested(depth: int) -> bytes:
    opening = b"".join(
        b"Content-Type: multipart/mixed; boundary=n%d\r\n\r\n--n%d\r\n" % (i, i)
        for i in range(depth)
    )
    return b"Subject: deep\r\n" + opening + b"Content-Type: text/plain\r\n\r\nleaf\r\n"


def test_up_to_max_parts_are_decoded() -> None:
    info = parse.details(multipart(parse.MAX_PARTS - 1))
    assert info.notice is None
    assert len(info.attachments) == parse.MAX_PARTS - 2  # the first part is the text body


def test_past_max_parts_only_the_headers_are_read() -> None:
    found = parse.read(multipart(parse.MAX_PARTS + 1))
    assert found.details.notice is not None
    assert "1,002 lines that may start MIME parts" in found.details.notice
    assert found.details.headers[0] == ("Subject", "s")
    assert (found.details.text, found.details.parts, found.details.attachments) == (None, [], [])
    assert found.summary()["subject"] == "s"
    assert found.attachment(0) is None


def test_nesting_past_max_depth_is_shown_raw_never_a_recursion_error() -> None:
    assert parse.details(nested(parse.MAX_DEPTH - 2)).notice is None
    for depth in (parse.MAX_DEPTH + 1, 400, 3000):
        notice = parse.details(nested(depth)).notice
        assert notice is not None
        assert "nest" in notice or "MIME parts" in notice


def test_too_many_header_fields_and_a_huge_content_field() -> None:
    many = b"".join(b"X-F%d: v\r\n" % i for i in range(parse.MAX_FIELDS + 1)) + b"\r\nbody\r\n"
    assert "header fields" in (parse.details(many).notice or "")
    wide = b"Content-Type: text/plain; x=" + b"y" * parse.MAX_CONTENT_FIELD + b"\r\n\r\nbody\r\n"
    assert "Content-Type field" in (parse.details(wide).notice or "")


def test_long_header_values_past_the_budget_are_decoded_word_by_word() -> None:
    crowd = ", ".join(f"=?utf-8?q?R=C3=A9my_{i}?= <r{i}@example.com>" for i in range(5000))
    raw = f"Subject: =?utf-8?q?Caf=C3=A9?=\r\nTo: {crowd}\r\n\r\nhi\r\n".encode()
    assert len(crowd) > parse.STRUCTURED_BUDGET
    found = parse.read(raw)
    assert found.details.notice is None
    assert found.header("Subject") == "Café"
    to = found.header("To")
    assert to.startswith("Rémy 0 <r0@example.com>, Rémy 1")
    assert to.endswith("Rémy 4999 <r4999@example.com>")


def _old_strip_tags(markup: str) -> str:
    """The regular expression the scan replaced (quadratic on hostile input): the oracle."""
    import html
    import re

    tag = re.compile(r"<(script|style)\b.*?</\1\s*>|<[^>]*>", re.IGNORECASE | re.DOTALL)
    return html.unescape(tag.sub(" ", markup))


@settings(max_examples=500, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            ["<", ">", "</", "script", "SCRIPT", "style", " ", "x", "&amp;", "\n", "<b>", "/"]
        ),
        max_size=24,
    ).map("".join)
)
def test_strip_tags_agrees_with_the_regular_expression(markup: str) -> None:
    from mailout.catcher.mime import strip_tags

    assert strip_tags(markup) == _old_strip_tags(markup)


def test_strip_tags_is_linear_on_hostile_markup() -> None:
    from mailout.catcher.mime import strip_tags

    # Counted in work, not time: a quadratic scan of 400,000 characters would not return.
    hostile = "<script>" * 50_000 + "<" * 100_000 + "<style>x" * 10_000
    assert strip_tags(hostile).split() == ["x"] * 10_000  # no end tag: only the tags go
    small = "<script>" * 50 + "<" * 100 + "<style>x" * 10
    assert strip_tags(small) == _old_strip_tags(small)
