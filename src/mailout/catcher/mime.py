"""The pieces of a parsed message the catcher shows: decoded header values, bodies, parts.

Helpers over the standard library's ``email`` objects (``policy.default``), for ``parse.py``.
None of them raises on malformed mail: what cannot be decoded is given as found.
"""

from __future__ import annotations

import email.header
import email.policy
import html as html_module
import re
import urllib.parse
from collections.abc import Iterator
from email.message import EmailMessage, Message

__all__ = [
    "bodies",
    "children",
    "content_id",
    "decode_bytes",
    "decode_header",
    "decode_words",
    "filename",
    "is_inline",
    "normalize_cid",
    "payload",
    "raw_items",
    "strip_tags",
    "text_of",
    "walk_leaves",
]


# -- headers -------------------------------------------------------------------------------------


def raw_items(message: Message) -> list[tuple[str, str]]:
    try:
        return [(str(name), str(value)) for name, value in message.raw_items()]
    except Exception:
        return []


def decode_header(message: Message, name: str, value: str) -> str:
    try:
        return str(message.policy.header_fetch_parse(name, value))
    except Exception:
        return decode_words(value)


def decode_words(value: str) -> str:
    """RFC 2047 decoding without the structured parser, for values policy.default chokes on."""
    try:
        chunks = email.header.decode_header(value)
        out = []
        for chunk, charset in chunks:
            if isinstance(chunk, bytes):
                out.append(decode_bytes(chunk, charset or "ascii"))
            else:
                out.append(chunk)
        return "".join(out)
    except Exception:
        return value


# -- bodies and parts ----------------------------------------------------------------------------


def bodies(message: EmailMessage) -> tuple[Message | None, Message | None]:
    """The parts shown as the plain-text and HTML bodies (what a mail client would pick)."""
    text = html = None
    try:
        text = message.get_body(preferencelist=("plain",))
    except Exception:
        text = None
    try:
        html = message.get_body(preferencelist=("html",))
    except Exception:
        html = None
    return text, html


def children(part: Message) -> list[Message]:
    # message/rfc822 is shown as one attachment (a forwarded mail), not descended into.
    if part.get_content_maintype() != "multipart":
        return []
    payload = part.get_payload()
    if isinstance(payload, list):
        return [child for child in payload if isinstance(child, Message)]
    return []


def walk_leaves(part: Message) -> Iterator[Message]:
    kids = children(part)
    if not kids and part.get_content_maintype() != "multipart":
        yield part
    for child in kids:
        yield from walk_leaves(child)


def filename(part: Message) -> str | None:
    try:
        name = part.get_filename()
    except Exception:
        return None
    return " ".join(str(name).split()) if name else None


def content_id(part: Message) -> str | None:
    value = part.get("Content-ID")
    if value is None:
        return None
    found = normalize_cid(str(value))
    return found or None


def normalize_cid(cid: str) -> str:
    cid = cid.strip()
    if cid[:4].lower() == "cid:":
        cid = urllib.parse.unquote(cid[4:])
    cid = cid.strip()
    if cid.startswith("<") and cid.endswith(">"):
        cid = cid[1:-1]
    return cid.strip()


def is_inline(part: Message) -> bool:
    try:
        disposition = part.get_content_disposition()
    except Exception:
        disposition = None
    if disposition == "attachment":
        return False
    # A part with a Content-ID and no "attachment" disposition is referenced from the HTML.
    return disposition == "inline" or content_id(part) is not None


def payload(part: Message) -> bytes:
    """The decoded bytes of a leaf (base64/quoted-printable undone); never raises."""
    try:
        if part.get_content_type() == "message/rfc822" or part.is_multipart():
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                return inner[0].as_bytes(policy=email.policy.compat32)
            if isinstance(inner, str):
                return inner.encode("utf-8", "surrogateescape")
            return b""
        data = part.get_payload(decode=True)
        if isinstance(data, bytes):
            return data
        return b""
    except Exception:
        raw = part.get_payload()
        return raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else b""


def text_of(part: Message | None) -> str | None:
    if part is None:
        return None
    try:
        content = part.get_content()  # type: ignore[attr-defined]
        if isinstance(content, str):
            return content.replace("\r\n", "\n")
    except Exception:
        pass
    return decode_bytes(payload(part), part.get_content_charset() or "utf-8").replace("\r\n", "\n")


def decode_bytes(data: bytes, charset: str) -> str:
    try:
        return data.decode(charset, "replace")
    except LookupError:  # a charset Python does not know
        return data.decode("utf-8", "replace")


_RAW_TEXT = re.compile(r"<(script|style)\b", re.IGNORECASE)
_END_TAG = {name: re.compile(rf"</{name}\s*>", re.IGNORECASE) for name in ("script", "style")}


def strip_tags(markup: str) -> str:
    """The text of some HTML, for the search index: tags, and script and style elements, dropped.

    A scan, not one regular expression: ``<[^>]*>`` or ``<script.*?</script>`` retried at
    every ``<`` take quadratic time on ``<<<<`` or ``<script>`` repeated with no end tag
    (10 s for 128 KB). Each search here starts past the last one, and an end tag not found
    is never searched for again.
    """
    out: list[str] = []
    pos = 0
    unclosed: set[str] = set()
    while True:
        lt = markup.find("<", pos)
        gt = markup.find(">", lt) if lt >= 0 else -1
        if gt < 0:  # no tag can close any more: the rest is text
            out.append(markup[pos:])
            break
        out.append(markup[pos:lt])
        out.append(" ")
        pos = gt + 1
        raw = _RAW_TEXT.match(markup, lt)
        if raw is not None and (name := raw[1].lower()) not in unclosed:
            end = _END_TAG[name].search(markup, raw.end())
            if end is not None:
                pos = max(pos, end.end())
            else:
                unclosed.add(name)
    return html_module.unescape("".join(out))
