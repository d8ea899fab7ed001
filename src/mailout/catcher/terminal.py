"""Text from a caught message made safe to print on the operator's terminal.

A subject or address holding ESC (``\\x1b]0;title\\x07``, ``\\x1b[2J``, an OSC 8 link) or
its one-byte C1 forms (``\\x9b``, ``\\x9d``) would drive the terminal of whoever runs
``mailout serve``: retitle it, clear it, hide text, plant links. Every control character is
written as an escape sequence instead, and so are the invisible characters that reorder or hide
text (bidirectional overrides, zero-width characters, RFC 2047-decoded line separators), and
lone surrogates (undecodable bytes), which would also make ``print`` fail.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["printable"]

# C0 controls but TAB (and LF, handled apart), DEL, C1 controls; Arabic letter mark, zero-width
# and bidirectional marks, line and paragraph separators, embeddings and overrides, word joiner
# to the isolates and deprecated format characters, BOM, interlinear annotation; surrogates.
_INVISIBLE = r"\u061c\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb\ud800-\udfff"
_UNSAFE: Final = re.compile(rf"[\x00-\x08\x0a-\x1f\x7f-\x9f{_INVISIBLE}]")
_UNSAFE_BUT_LF: Final = re.compile(rf"[\x00-\x08\x0b-\x1f\x7f-\x9f{_INVISIBLE}]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def printable(text: str, *, newlines: bool = False) -> str:
    """``text`` with every character that could act on a terminal written as ``\\xNN`` or
    ``\\uNNNN``; line feeds are kept when ``newlines`` (a body), escaped otherwise."""
    return (_UNSAFE_BUT_LF if newlines else _UNSAFE).sub(_escape, text)
