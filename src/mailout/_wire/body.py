"""MIME bodies in wire form: the transfer encoding of a part, and a cache of encoded attachments.

The choice of encoding follows the standard library's ``set_content`` (``email.contentmanager``)
so that both paths agree: text whose lines all fit in 78 octets goes as it is (7bit when ASCII,
else 8bit); longer lines go quoted-printable or base64, whichever is smaller on the first ten
lines. Bytes always go base64. Line ends are normalised to CRLF and a text part always ends with
one, exactly as the standard library does under ``policy.SMTP``.
"""

from __future__ import annotations

import binascii
import re
import threading
from collections import OrderedDict
from email import quoprimime
from typing import Final

Pieces = tuple[bytes, ...]  # an encoded part, in pieces that are joined with the message

__all__ = ["AttachmentCache", "base64_body", "quoted_printable", "text_body"]

_BASE64_LINE: Final = re.compile(rb".{1,76}", re.DOTALL)  # RFC 2045 §6.8: 76 characters
_MAX_LINE: Final = 78  # policy.default.max_line_length, which set_content measures against
_SNIFF_LINES: Final = 10
# RFC 2045 §6.7: quoted-printable lines are at most 76 characters; printable ASCII but "=",
# space and tab stand for themselves (CR and LF are the line breaks).
_QP_LINE: Final = 76
_QP_KEEP_CRLF: Final = bytes(range(0x21, 0x7F)).replace(b"=", b"") + b" \t\r\n"
_BYTES: Final = [bytes([b]) for b in range(256)]
_ESCAPES: Final = [b"=%02X" % b for b in range(256)]  # RFC 2045 §6.7: upper-case hex


def text_body(text: str, charset: str) -> tuple[str, bytes]:
    """(Content-Transfer-Encoding, body with CRLF line ends) of a text part."""
    data = text.encode(charset)
    lines = data.splitlines()  # bytes.splitlines() breaks at CR, LF and CRLF only, as wanted
    # Base64 carries text in canonical form, CRLF line breaks (RFC 2045 §6.8), as the standard
    # library writes it under policy.SMTP (Django's smtp backend: message(policy=SMTP)); every
    # encoding here starts from that form.
    canonical = b"\r\n".join(lines) + b"\r\n"
    lengths = list(map(len, lines))  # measured once: for the choice and the soft breaks
    if max(lengths, default=0) <= _MAX_LINE:
        return ("7bit" if data.isascii() else "8bit"), canonical
    unsafe = data.translate(None, _QP_KEEP_CRLF)  # CR and LF kept: the same for canonical
    if _prefers_base64(lines[:_SNIFF_LINES], len(unsafe)):
        return "base64", base64_body(canonical)
    return "quoted-printable", quoted_printable(canonical, lines, unsafe, lengths)


def _prefers_base64(sniff_lines: list[bytes], unsafe: int) -> bool:
    """The standard library's choice (``email.contentmanager``): base64 when quoted-printable
    is longer on the first ten lines, measured with its pure-Python ``quoprimime``.

    That measure is bounded here with counts (``unsafe``: the bytes the whole text needs
    escaped, at least as many as its first lines need); only a text whose bounds straddle the
    base64 size (about one byte in six to escape) pays for the exact measure.
    """
    lines = len(sniff_lines)
    size = sum(map(len, sniff_lines)) + 2 * lines  # the sniff, CRLF after every line
    base64_size = (size + 2) // 3 * 4 + 1  # what binascii.b2a_base64() writes for it
    # quoprimime writes each line with "\n", each soft break as "=\n" (2 more characters, one
    # for at most every 75), and at most 4 more for white space at the end of a line.
    most = size - lines + 2 * unsafe
    if most + 2 * (most // 75 + lines) + 4 * lines <= base64_size:
        return False
    sniff = b"\r\n".join(sniff_lines) + b"\r\n"
    escaped = size - lines * 2 + 2 * len(sniff.translate(None, _QP_KEEP_CRLF))
    if escaped + lines > base64_size:
        return True
    if escaped + lines + 2 * (escaped // 75 + lines) + 4 * lines <= base64_size:
        return False
    qp_size = len(quoprimime.body_encode(sniff.decode("latin-1"), _MAX_LINE))
    return qp_size > base64_size


def quoted_printable(
    data: bytes,
    lines: list[bytes] | None = None,
    unsafe_bytes: bytes | None = None,
    lengths: list[int] | None = None,
) -> bytes:
    """Quoted-printable (RFC 2045 §6.7) of ``data``, CRLF-terminated lines, in CRLF lines of at
    most 76 characters; ``lines``, if given, are those of ``data`` (saves splitting it again
    when nothing needs escaping) and ``lengths`` theirs, ``unsafe_bytes`` its bytes that need
    escaping.

    Done with C-speed bytes operations: each distinct byte that needs it is escaped with one
    ``replace`` ("=" first, since every escape adds one), white space before a line break is
    escaped, and only lines still over 76 characters get soft breaks, never inside an escape.
    (``binascii.b2a_qp`` is slower, ~20 ns a byte, and can write a line of 77.) Text with
    many distinct bytes to escape is mostly not ASCII, and goes base64 anyway.
    """
    if unsafe_bytes is None:
        unsafe_bytes = data.translate(None, _QP_KEEP_CRLF)
    unsafe = set(unsafe_bytes)
    escaped = bool(unsafe)  # the given lines are then stale, "=" alone included
    if 0x3D in unsafe:  # "=" first: every escape written afterwards holds one
        data = data.replace(b"=", b"=3D")
        unsafe.discard(0x3D)
    for byte in unsafe:
        data = data.replace(_BYTES[byte], _ESCAPES[byte])
    # Rule 3: white space at the end of an encoded line is escaped (escaping the last one is
    # enough: the others are then followed by "="). A tab is looked for at memchr speed first.
    trailing = b" \r\n" in data
    if trailing:
        data = data.replace(b" \r\n", b"=20\r\n")
    if b"\t" in data and b"\t\r\n" in data:
        trailing = True
        data = data.replace(b"\t\r\n", b"=09\r\n")
    # Unchanged, the given lines are the encoded ones (and the empty one after the last CRLF).
    if lines is None or escaped or trailing:
        lines = data.split(b"\r\n")
        lengths = list(map(len, lines))
    else:
        lines = [*lines, b""]
        lengths = [*lengths, 0] if lengths is not None else list(map(len, lines))
    # Rule 5: soft line breaks ("=" at the end) keep encoded lines within 76.
    long_lines = [index for index, length in enumerate(lengths) if length > _QP_LINE]
    if not long_lines:
        return data
    for index in long_lines:
        line = lines[index]
        if lengths[index] <= 2 * _QP_LINE - 1 and line[74] != 0x3D and line[73] != 0x3D:
            lines[index] = line[:75] + b"=\r\n" + line[75:]  # the usual one soft break
        else:
            lines[index] = _soft_breaks(line)
    return b"\r\n".join(lines)


def _soft_breaks(line: bytes) -> bytes:
    """``line`` in pieces of at most 75 characters and a soft break, the last of up to 76;
    never cut inside an escape ("=XX" starts at most two characters before a cut)."""
    pieces = []
    while len(line) > _QP_LINE:
        cut = 74 if line[74] == 0x3D else 73 if line[73] == 0x3D else 75
        pieces.append(line[:cut])
        line = line[cut:]
    pieces.append(line)
    return b"=\r\n".join(pieces)


def base64_body(data: bytes) -> bytes:
    """Base64 in lines of 76 characters, each ending in CRLF (RFC 2045 §6.8)."""
    # One C call for the whole encoding, then slicing: ~15% faster than encodebytes(), whose
    # Python loop encodes 57 bytes at a time.
    encoded = binascii.b2a_base64(data, newline=False)
    if not encoded:
        return b""
    # The lines cut by one regular-expression scan: a fifth cheaper than slicing in a loop.
    return b"\r\n".join(_BASE64_LINE.findall(encoded)) + b"\r\n"


class AttachmentCache:
    """A small LRU of encoded attachment parts, for one attachment sent to many recipients.

    Keyed by the identity of the content object (no 50 KB hash per lookup), the MIME type,
    the file name and the charset. An entry holds its content, so the id cannot be reused
    while the entry lives, and a hit is checked with ``is``.
    """

    def __init__(self, maxsize: int = 64, min_size: int = 1024) -> None:
        self.maxsize = maxsize
        self.min_size = min_size  # smaller parts are cheaper to encode than to look up
        self.hits = 0
        self.misses = 0
        self._parts: OrderedDict[tuple[object, ...], tuple[object, Pieces, bool]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, content: object, *key: object) -> tuple[Pieces, bool] | None:
        with self._lock:
            entry = self._parts.get((id(content), *key))
            if entry is None or entry[0] is not content:
                self.misses += 1
                return None
            self._parts.move_to_end((id(content), *key))
            self.hits += 1
            return entry[1], entry[2]

    def put(self, content: object, key: tuple[object, ...], part: tuple[Pieces, bool]) -> None:
        with self._lock:
            self._parts[(id(content), *key)] = (content, *part)
            while len(self._parts) > self.maxsize:
                self._parts.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._parts.clear()
            self.hits = self.misses = 0
