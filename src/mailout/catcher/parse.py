"""Read a stored message for display: decoded headers, bodies, attachments, the MIME tree.

Pure functions over the raw bytes, built on the standard library's ``email`` package with
``policy.default``. Caught mail is whatever a client sent, so nothing here raises on malformed
input: a header that does not parse is shown as found, a body in an unknown charset is decoded
with replacement characters, a part that cannot be decoded is given as its raw payload.
"""

from __future__ import annotations

import email.header
import email.policy
import html as html_module
import re
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage, Message
from email.parser import BytesParser

__all__ = [
    "AttachmentInfo",
    "Details",
    "attachment",
    "by_content_id",
    "details",
    "parse",
    "summarize",
]

# How much body text goes into the search index: enough for any real mail, bounded for 50 MB ones.
SEARCH_TEXT_LIMIT = 1_000_000
_ADDRESS_HEADERS = ("From", "To", "Cc", "Reply-To", "Sender")


@dataclass(frozen=True, slots=True)
class AttachmentInfo:
    index: int
    filename: str | None
    content_type: str
    size: int
    content_id: str | None
    inline: bool


@dataclass(frozen=True, slots=True)
class Details:
    headers: list[tuple[str, str]]
    text: str | None
    html: str | None
    attachments: list[AttachmentInfo]
    # The MIME tree flattened in document order. Each entry: "path" ("" for the whole message,
    # then IMAP-style "1", "1.2", ...), "content_type", "size" (decoded bytes; a container's is
    # the sum of its children), "filename", "depth" (0 for the whole message), and, as
    # extensions, "content_id", "inline" and "attachment" (the AttachmentInfo.index or None).
    parts: list[dict[str, object]]


def parse(raw: bytes) -> EmailMessage:
    """The message as a stdlib ``EmailMessage`` (policy.default); never raises."""
    return BytesParser(policy=email.policy.default).parsebytes(raw)


def summarize(raw: bytes) -> dict[str, object]:
    """What the store indexes: decoded From/To/Subject, attachment count, search text."""
    message = parse(raw)
    text, html = _bodies(message)
    _, attachments = _leaves(message, text, html)
    pieces = [_header(message, name) for name in ("Subject", *_ADDRESS_HEADERS)]
    pieces.append(_text_of(text) or "")
    pieces.append(_strip_tags(_text_of(html) or ""))
    search_text = "\n".join(pieces)[:SEARCH_TEXT_LIMIT]
    return {
        "from_header": _header(message, "From"),
        "to_header": _header(message, "To"),
        "subject": _header(message, "Subject"),
        "attachments": sum(1 for _, info in attachments if not info.inline),
        "search_text": search_text,
    }


def details(raw: bytes) -> Details:
    message = parse(raw)
    text, html = _bodies(message)
    _, attachments = _leaves(message, text, html)
    index_of = {id(part): info.index for part, info in attachments}
    infos = {info.index: info for _, info in attachments}
    parts: list[dict[str, object]] = []
    _flatten(message, "", 0, parts, index_of, infos)
    items = _raw_items(message)
    return Details(
        headers=[(name, _decode_header(message, name, value)) for name, value in items],
        text=_text_of(text),
        html=_text_of(html),
        attachments=[info for _, info in attachments],
        parts=parts,
    )


def attachment(raw: bytes, index: int) -> tuple[str, str | None, bytes] | None:
    """(content type, file name, decoded bytes) of the attachment numbered ``index``."""
    message = parse(raw)
    text, html = _bodies(message)
    _, attachments = _leaves(message, text, html)
    for part, info in attachments:
        if info.index == index:
            return info.content_type, info.filename, _payload(part)
    return None


def by_content_id(raw: bytes, cid: str) -> tuple[str, bytes] | None:
    """(content type, decoded bytes) of the part whose Content-ID is ``cid``.

    ``cid`` may be given as in an HTML ``src`` (``cid:abc%40example.com``), bare, or in angle
    brackets; an exact match wins over a case-insensitive one.
    """
    wanted = _normalize_cid(cid)
    if not wanted:
        return None
    message = parse(raw)
    loose = None
    for part in _walk_leaves(message):
        found = _content_id(part)
        if found is None:
            continue
        if found == wanted:
            return part.get_content_type(), _payload(part)
        if loose is None and found.casefold() == wanted.casefold():
            loose = part
    if loose is not None:
        return loose.get_content_type(), _payload(loose)
    return None


# -- headers -------------------------------------------------------------------------------------


def _raw_items(message: Message) -> list[tuple[str, str]]:
    try:
        return [(str(name), str(value)) for name, value in message.raw_items()]
    except Exception:
        return []


def _decode_header(message: Message, name: str, value: str) -> str:
    try:
        return str(message.policy.header_fetch_parse(name, value))
    except Exception:
        return _decode_words(value)


def _decode_words(value: str) -> str:
    """RFC 2047 decoding without the structured parser, for values policy.default chokes on."""
    try:
        chunks = email.header.decode_header(value)
        out = []
        for chunk, charset in chunks:
            if isinstance(chunk, bytes):
                out.append(_decode_bytes(chunk, charset or "ascii"))
            else:
                out.append(chunk)
        return "".join(out)
    except Exception:
        return value


def _header(message: Message, name: str) -> str:
    """The decoded value of the first ``name`` header, "" when absent; unfolded."""
    for found, value in _raw_items(message):
        if found.lower() == name.lower():
            return " ".join(_decode_header(message, found, value).split())
    return ""


# -- bodies and parts ----------------------------------------------------------------------------


def _bodies(message: EmailMessage) -> tuple[Message | None, Message | None]:
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


def _children(part: Message) -> list[Message]:
    # message/rfc822 is shown as one attachment (a forwarded mail), not descended into.
    if part.get_content_maintype() != "multipart":
        return []
    payload = part.get_payload()
    if isinstance(payload, list):
        return [child for child in payload if isinstance(child, Message)]
    return []


def _walk_leaves(part: Message) -> Iterator[Message]:
    children = _children(part)
    if not children and part.get_content_maintype() != "multipart":
        yield part
    for child in children:
        yield from _walk_leaves(child)


def _leaves(
    message: Message, text: Message | None, html: Message | None
) -> tuple[list[Message], list[tuple[Message, AttachmentInfo]]]:
    """Every leaf part; and those that are not the chosen bodies, as numbered attachments."""
    leaves = list(_walk_leaves(message))
    attachments: list[tuple[Message, AttachmentInfo]] = []
    for part in leaves:
        if part is text or part is html:
            continue
        if part is message and part.get_content_maintype() == "text":
            continue  # a single-part message whose body get_body() did not pick (e.g. text/csv)
        info = AttachmentInfo(
            index=len(attachments),
            filename=_filename(part),
            content_type=part.get_content_type(),
            size=len(_payload(part)),
            content_id=_content_id(part),
            inline=_is_inline(part),
        )
        attachments.append((part, info))
    return leaves, attachments


def _flatten(
    part: Message,
    path: str,
    depth: int,
    out: list[dict[str, object]],
    index_of: dict[int, int],
    infos: dict[int, AttachmentInfo],
) -> int:
    entry: dict[str, object] = {
        "path": path,
        "content_type": part.get_content_type(),
        "size": 0,
        "filename": _filename(part),
        "depth": depth,
        "content_id": _content_id(part),
        "inline": _is_inline(part),
        "attachment": index_of.get(id(part)),
    }
    out.append(entry)
    children = _children(part)
    if children:
        size = 0
        for number, child in enumerate(children, 1):
            child_path = f"{path}.{number}" if path else str(number)
            size += _flatten(child, child_path, depth + 1, out, index_of, infos)
    else:
        index = index_of.get(id(part))
        size = infos[index].size if index is not None else len(_payload(part))
    entry["size"] = size
    return size


def _filename(part: Message) -> str | None:
    try:
        name = part.get_filename()
    except Exception:
        return None
    return " ".join(str(name).split()) if name else None


def _content_id(part: Message) -> str | None:
    value = part.get("Content-ID")
    if value is None:
        return None
    found = _normalize_cid(str(value))
    return found or None


def _normalize_cid(cid: str) -> str:
    cid = cid.strip()
    if cid[:4].lower() == "cid:":
        cid = urllib.parse.unquote(cid[4:])
    cid = cid.strip()
    if cid.startswith("<") and cid.endswith(">"):
        cid = cid[1:-1]
    return cid.strip()


def _is_inline(part: Message) -> bool:
    try:
        disposition = part.get_content_disposition()
    except Exception:
        disposition = None
    if disposition == "attachment":
        return False
    # A part with a Content-ID and no "attachment" disposition is referenced from the HTML.
    return disposition == "inline" or _content_id(part) is not None


def _payload(part: Message) -> bytes:
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


def _text_of(part: Message | None) -> str | None:
    if part is None:
        return None
    try:
        content = part.get_content()  # type: ignore[attr-defined]
        if isinstance(content, str):
            return content.replace("\r\n", "\n")
    except Exception:
        pass
    return _decode_bytes(_payload(part), part.get_content_charset() or "utf-8").replace(
        "\r\n", "\n"
    )


def _decode_bytes(data: bytes, charset: str) -> str:
    try:
        return data.decode(charset, "replace")
    except LookupError:  # a charset Python does not know
        return data.decode("utf-8", "replace")


_TAG = re.compile(r"<(script|style)\b.*?</\1\s*>|<[^>]*>", re.IGNORECASE | re.DOTALL)


def _strip_tags(markup: str) -> str:
    return html_module.unescape(_TAG.sub(" ", markup))
