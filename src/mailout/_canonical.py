"""Bytes known to be in SMTP's canonical form, so that the client need not scan them again.

RFC 5321 §2.3.8 allows CR and LF only together, as CRLF; the SMTP client normalises any other
content before it reaches the wire (a bare LF is how SMTP smuggling starts). A message that
``mailout.wire`` wrote is already in that form by construction (every line it writes ends in
CRLF, and its header block is checked), which it says by handing over a ``CanonicalBytes``:
the check is fused into rendering instead of being done a second time, over every byte, by
the client. Only code that guarantees the form may make one (``canonical()``); plain ``bytes``
from anywhere else are always normalised.
"""

from __future__ import annotations

__all__ = ["CanonicalBytes", "canonical"]


class CanonicalBytes(bytes):
    """Bytes whose every CR and LF is part of a CRLF, ending in CRLF (or empty)."""

    __slots__ = ()


def canonical(data: bytes) -> CanonicalBytes:
    """Mark ``data``, which the caller built in canonical form, as such (a copy of it)."""
    return CanonicalBytes(data)
