"""Message content framing: DATA (normalised, dot-stuffed, terminated) and BDAT (normalised)."""

from __future__ import annotations

import re

from mailout._canonical import crlf_only

__all__ = ["encode_bdat", "encode_data", "normalize_newlines"]

# A CRLF pair first, so that it is not seen as a bare CR followed by a bare LF.
_NEWLINE = re.compile(rb"\r\n|\r|\n")


def normalize_newlines(content: bytes) -> bytes:
    """Turn every CRLF, bare CR and bare LF into CRLF.

    RFC 5321 §2.3.8 allows no bare CR or LF in SMTP text; servers that accept ``\\n.\\r\\n`` or
    ``\\r.\\r`` as end of data are what SMTP smuggling exploits, so none may reach the wire.
    """
    if crlf_only(content):  # a CanonicalBytes (mailout.wire, the queue's store) at no cost
        return content
    return _NEWLINE.sub(b"\r\n", content)


def _with_final_crlf(content: bytes) -> bytes:
    if content and not content.endswith(b"\r\n"):
        return content + b"\r\n"
    return content


def encode_data(content: bytes) -> bytes:
    """Frame ``content`` for the DATA command: normalise, dot-stuff and add ``.CRLF``.

    RFC 5321 §4.5.2: a line that starts with "." gets one more "." in front; the data ends
    with CRLF "." CRLF, whose first CRLF belongs to the last line of the content. Empty content
    is sent as a lone ".CRLF" (which is also how RFC 2920 §3.1 aborts an accepted DATA).
    """
    body = _with_final_crlf(normalize_newlines(content))
    # Once every line ends in CRLF, a line starts either at offset 0 or right after a CRLF.
    stuffed = body.replace(b"\r\n.", b"\r\n..")
    if stuffed.startswith(b"."):
        stuffed = b"." + stuffed
    return stuffed + b".\r\n"


def encode_bdat(content: bytes) -> bytes:
    """Prepare ``content`` for BDAT: normalise line endings and end with CRLF; no dot-stuffing.

    RFC 3030 §2: BDAT chunks are counted octets, so dots are never stuffed. Line endings are still
    normalised (RFC 5322 §2.3 forbids bare CR/LF) so DATA and BDAT deliver the same message.
    """
    return _with_final_crlf(normalize_newlines(content))
