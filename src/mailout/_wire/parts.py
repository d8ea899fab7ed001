"""MIME parts of the fast path: each leaf checked when a message is prepared, encoded when it is
finished, and the multipart bodies that hold them.

Every check here either passes or raises :class:`Fallback` (the standard library then decides),
so that finishing a prepared message has nothing left to refuse.
"""

from __future__ import annotations

import re
from email.message import Message
from typing import Final

from mailout._wire.body import AttachmentCache, Pieces, base64_body, text_body
from mailout._wire.headers import Fallback, disposition_field, type_field
from mailout.address import check_header_value
from mailout.message import leaf_content

__all__ = [
    "Leaf",
    "attachment_cache",
    "attachment_plan",
    "encodable",
    "encode",
    "leaf",
    "leaf_plan",
    "mime_type",
    "multipart_body",
    "token",
]

# RFC 2045 §5.1 tokens, restricted to characters no parser treats specially.
_TOKEN: Final = re.compile(r"[A-Za-z0-9!#$&^_.+-]+")

attachment_cache = AttachmentCache()


def token(value: object, what: str) -> str:
    if type(value) is str and value in _TOKENS:  # "plain", "html", "mixed", …: checked once
        return value
    if not isinstance(value, str) or not _TOKEN.fullmatch(value):
        raise Fallback(f"{what} is not a plain MIME token")
    if len(_TOKENS) < 256:
        _TOKENS.add(value)
    return value


_TOKENS: set[str] = set()
_MIME_TYPES: dict[str, tuple[str, str]] = {}


def leaf(fields: list[str], body: bytes) -> bytes:
    return ("\r\n".join(fields) + "\r\n\r\n").encode("ascii") + body


def mime_type(mimetype: object, what: str) -> tuple[str, str]:
    if type(mimetype) is str and (known := _MIME_TYPES.get(mimetype)) is not None:
        return known  # checked once
    if not isinstance(mimetype, str):
        raise Fallback(f"{what} MIME type is not a string")
    basetype, _, subtype = mimetype.partition("/")
    token(basetype, f"{what} MIME type")
    token(subtype, f"{what} MIME subtype")
    if basetype.lower() in ("message", "multipart"):
        raise Fallback(f"a {basetype.lower()}/* {what}")
    if type(mimetype) is str and len(_MIME_TYPES) < 256:
        _MIME_TYPES[mimetype] = (basetype, subtype)
    return basetype, subtype


def encodable(text: str, charset: str) -> str:
    """``text``, once it is known to encode in ``charset`` (a lone surrogate does not)."""
    if not text.isascii():
        text.encode(charset)
    return text


# A leaf part to encode: (content, text subtype or MIME type of bytes, Content-Disposition or
# None, and when the encoded part may be cached: the content given and the cache key).
_CacheKey = tuple[object, tuple[object, ...]]
Leaf = tuple[str | bytes, str, str | None, _CacheKey | None]


def leaf_plan(
    content: object,
    mimetype: object,
    charset: str,
    what: str,
    *,
    encoding: str,
    disposition: str | None = None,
) -> Leaf:
    """Django's str/bytes rule for a leaf part (``message.leaf_content``), checked; str given
    for a type that is not text is encoded with ``encoding``."""
    basetype, subtype = mime_type(mimetype, what)
    if type(content) is str and basetype == "text":  # the usual HTML alternative
        type_field(f"text/{subtype}", charset)  # (refuses now what finishing would)
        return encodable(content, charset), subtype, disposition, None
    if not isinstance(content, str | bytes):
        raise Fallback(f"{what} content that is neither str nor bytes")
    data, mimetype = leaf_content(content, f"{basetype}/{subtype}", encoding, what)
    # The Content-Type is written when finishing; anything it refuses is refused now.
    if isinstance(data, str):
        type_field(f"text/{subtype}", charset)
        return encodable(data, charset), subtype, disposition, None
    type_field(mimetype)
    return data, mimetype, disposition, None


def attachment_plan(attachment: object, charset: str) -> Leaf:
    if isinstance(attachment, Message):
        raise Fallback("a MIME part in attachments")
    if not isinstance(attachment, tuple) or len(attachment) != 3:
        raise Fallback("an attachment that is not (filename, content, mimetype)")
    filename, content, mimetype = attachment
    if filename is not None and not isinstance(filename, str):
        raise Fallback("an attachment file name that is not a string")
    if filename:
        check_header_value("attachment filename", filename)
    leaf = leaf_plan(
        content,
        mimetype,
        charset,
        "attachment",
        encoding="utf-8",
        disposition=disposition_field(filename or None),
    )
    if len(attachment[1]) < attachment_cache.min_size:
        return leaf
    return (*leaf[:3], (attachment[1], (mimetype, filename, charset)))


def encode(planned: Leaf, charset: str, raw: list[bytes]) -> Pieces:
    """The encoded part as (header block, body), from the attachment cache when it was encoded
    before; a 7bit/8bit body is added to ``raw``, for the boundaries to be checked against."""
    content, kind, disposition, cached = planned
    if cached is not None:
        original, key = cached
        hit = attachment_cache.get(original, *key)
        if hit is not None:
            part, is_raw = hit
            if is_raw:
                raw.append(part[-1])
            return part
    is_raw = False
    if isinstance(content, str):
        cte, body = text_body(content, charset)
        fields = [type_field(f"text/{kind}", charset), f"Content-Transfer-Encoding: {cte}"]
        if cte in ("7bit", "8bit"):
            raw.append(body)  # may hold anything, so the boundaries are checked against it
            is_raw = True
    else:
        fields = [type_field(kind), "Content-Transfer-Encoding: base64"]
        body = base64_body(content)
    if disposition is not None:
        fields.append(disposition)
    part = (leaf(fields, b""), body)
    if cached is not None:
        attachment_cache.put(cached[0], cached[1], (part, is_raw))
    return part


def multipart_body(parts: list[Pieces], boundary: str) -> list[bytes]:
    """The body of a multipart holding ``parts`` (each given as pieces), as pieces too: the
    message is joined once, at the end, not copied again at every level of nesting."""
    delimiter = b"--" + boundary.encode()
    between = b"\r\n" + delimiter + b"\r\n"
    pieces = [delimiter, b"\r\n"]
    for index, part in enumerate(parts):
        if index:
            pieces.append(between)
        pieces += part
    pieces += (b"\r\n", delimiter, b"--\r\n")
    return pieces
