"""Header fields in wire form: RFC 2047 encoded words, folding, mailboxes, MIME parameters.

Every function here either returns a field that decodes to exactly the text it was given, or
raises :class:`Fallback` so that the caller hands the message to the standard library instead.
Values reach this module already checked for CR, LF and NUL (``address.check_header_value``).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Final
from urllib.parse import quote

from mailout.address import Address, PlainAddress

__all__ = [
    "Fallback",
    "address_field",
    "disposition_field",
    "encoded_words",
    "fold",
    "message_id_field",
    "type_field",
    "unstructured_field",
]

FOLD_AT: Final = 78  # RFC 5322 §2.1.1: a line SHOULD be at most 78 characters
MAX_LINE: Final = 998  # RFC 5322 §2.1.1: and MUST be at most 998 octets
# RFC 2047 §2: an encoded word is at most 75 characters; "=?utf-8?b?" and "?=" take 12.
_EW_ROOM: Final = 75 - 12
_B_BYTES: Final = _EW_ROOM // 4 * 3
# RFC 2047 §5(3): the characters a "Q" word may carry as themselves anywhere, phrases included.
_Q_SAFE: Final = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")
_ATEXT: Final = r"A-Za-z0-9!#$%&'*+/=?^_`{|}~-"  # RFC 5322 §3.2.3
_ATOM_PHRASE: Final = re.compile(rf"[{_ATEXT}]+(?: [{_ATEXT}]+)*")
_UTF8_ATEXT: Final = _ATEXT + "\x80-\U0010ffff"  # RFC 6532 §3.2: UTF-8 is atext too
_UTF8_ATOM_PHRASE: Final = re.compile(rf"[{_UTF8_ATEXT}]+(?: [{_UTF8_ATEXT}]+)*")
_WORDS: Final = re.compile(r"( *)([^ ]+)")
# RFC 5322 §3.6.4, strictly: "<" dot-atom-text "@" dot-atom-text ">".
_MSG_ID: Final = re.compile(rf"<[{_ATEXT}]+(?:\.[{_ATEXT}]+)*@[{_ATEXT}]+(?:\.[{_ATEXT}]+)*>")
# RFC 2231 §7 attribute-char, minus what urllib.parse.quote() always keeps (letters, digits, _.-~).
_PARAM_SAFE: Final = "!#$&+^`|"
_PARAM_CHUNK: Final = 60

Segment = tuple[str, str]  # (the whitespace before a token, where a fold may go; the token)


class Fallback(Exception):
    """The fast path cannot be sure of this input; the standard library must serialise it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _octets(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode())


def fold(name: str, segments: Iterable[Segment]) -> str:
    """``Name: value`` folded before the whitespace of a segment once a line passes 78.

    Unfolding (RFC 5322 §2.2.3) removes only the CRLF we insert, so the value is unchanged.
    """
    out = [name, ":"]
    width = len(name) + 1
    first = True
    for space, token in segments:
        size = len(space) + _octets(token)
        if not first and width + size > FOLD_AT:
            out.append("\r\n")
            width = 0
        out.append(space)
        out.append(token)
        width += size
        if width > MAX_LINE:
            raise Fallback("a word too long to fold into 998 octets")
        first = False
    return "".join(out)


def encoded_words(text: str) -> list[str]:
    """``text`` as RFC 2047 words of at most 75 characters, split between characters.

    Words separated by whitespace decode to their concatenation (RFC 2047 §6.2), so every
    space of ``text`` travels inside a word.
    """
    data = text.encode()
    q_size = sum(1 if byte in _Q_SAFE or byte == 0x20 else 3 for byte in data)
    words: list[str] = []
    if q_size > (len(data) + 2) // 3 * 4:
        start = 0
        while start < len(data):
            stop = min(start + _B_BYTES, len(data))
            while stop < len(data) and data[stop] & 0xC0 == 0x80:  # a UTF-8 continuation byte
                stop -= 1
            words.append(f"=?utf-8?b?{base64.b64encode(data[start:stop]).decode()}?=")
            start = stop
        return words
    chunk: list[str] = []
    size = 0
    for char in text:
        if char == " ":
            piece = "_"
        elif ord(char) < 0x80 and ord(char) in _Q_SAFE:
            piece = char
        else:
            piece = "".join(f"={byte:02X}" for byte in char.encode())
        if size + len(piece) > _EW_ROOM:
            words.append(f"=?utf-8?q?{''.join(chunk)}?=")
            chunk, size = [], 0
        chunk.append(piece)
        size += len(piece)
    words.append(f"=?utf-8?q?{''.join(chunk)}?=")
    return words


def _check_text(value: str, what: str) -> None:
    if "=?" in value:
        # The standard library decodes encoded words found in values it is given.
        raise Fallback(f"{what} holds '=?' (looks like an encoded word)")
    if not value.isprintable():
        raise Fallback(f"{what} holds a control, format or separator character")


def unstructured_field(name: str, value: str, utf8: bool) -> str:
    """An unstructured field (RFC 5322 §3.2.5): Subject, X-*, In-Reply-To and the like."""
    if (
        value
        and value.isascii()
        and len(name) + 2 + len(value) <= FOLD_AT
        and value.isprintable()
        and "=?" not in value
        and value[:1] != " " != value[-1:]
    ):
        # Short printable ASCII, written as it is: what the general path below returns for it,
        # without its cache (a subject differs from message to message).
        return f"{name}: {value}"
    return _unstructured_field(name, value, utf8)


@lru_cache(maxsize=2048)
def _unstructured_field(name: str, value: str, utf8: bool) -> str:
    if not value:
        return f"{name}:"
    _check_text(value, "header value")
    if value[0] == " " or value[-1] == " ":
        raise Fallback("leading or trailing space in a header value")
    raw = utf8 or value.isascii()
    if raw and len(name) + 2 + _octets(value) <= FOLD_AT:
        return f"{name}: {value}"
    pairs: list[Segment] = _WORDS.findall(value)
    if raw:
        segments = pairs
    else:
        segments = []
        index = 0
        while index < len(pairs):
            space, word = pairs[index]
            index += 1
            if word.isascii():
                segments.append((space, word))
                continue
            # A run of words that need encoding becomes one run of encoded words.
            run = [word]
            while index < len(pairs) and not pairs[index][1].isascii():
                run.extend(pairs[index])
                index += 1
            words = encoded_words("".join(run))
            segments.append((space, words[0]))
            segments.extend((" ", w) for w in words[1:])
    segments[0] = (" ", segments[0][1])
    return fold(name, segments)


def message_id_field(name: str, value: str) -> str:
    if not _MSG_ID.fullmatch(value) or "=?" in value or len(value) > 900:
        raise Fallback("Message-ID given in headers is not a plain <local@domain>")
    return f"{name}: {value}"


def _quoted(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _mailbox(address: Address, utf8: bool) -> tuple[str, ...]:
    """A mailbox as tokens that may be separated by a space or a fold."""
    # Cached by its strings: a tuple of str hashes in C, the dataclass's own hash in Python.
    return _mailbox_of(address.display_name, address.local_part, address.domain, utf8)


@lru_cache(maxsize=4096)
def _mailbox_of(display_name: str, local_part: str, domain: str, utf8: bool) -> tuple[str, ...]:
    address = Address(display_name, local_part, domain)
    spec = address.addr_spec
    if not utf8 and not spec.isascii():
        raise Fallback("a non-ASCII local part without SMTPUTF8")
    name = address.display_name
    if not name:
        return (spec,)
    _check_text(name, "display name")
    if "" in name.split(" "):
        raise Fallback("leading, trailing or doubled space in a display name")
    if name.isascii() or utf8:
        phrase = _UTF8_ATOM_PHRASE if utf8 else _ATOM_PHRASE
        tokens = name.split(" ") if phrase.fullmatch(name) else [_quoted(name)]
    else:
        # The standard library's parser reads the space between two encoded words of a phrase
        # as part of the name (RFC 2047 §6.2 says to drop it): only one word agrees with it.
        tokens = encoded_words(name)
        if len(tokens) > 1:
            raise Fallback("a non-ASCII display name too long for one encoded word")
    return (*tokens, f"<{spec}>")


def address_field(name: str, addresses: Sequence[Address], utf8: bool) -> str:
    """From, To, Cc, Reply-To: mailboxes separated by commas, folded between words."""
    if len(addresses) == 1:
        # The usual one mailbox on one line: what fold() writes when nothing needs folding.
        address = addresses[0]
        if type(address) is PlainAddress:  # ASCII atoms: the tokens _mailbox() would make
            display_name, local_part, domain = address
            line = (
                f"{name}: {display_name} <{local_part}@{domain}>"
                if display_name
                else f"{name}: {local_part}@{domain}"
            )
            if len(line) <= FOLD_AT:
                return line
        line = f"{name}: {' '.join(_mailbox(address, utf8))}"
        if _octets(line) <= FOLD_AT:
            return line
    segments: list[Segment] = []
    last = len(addresses) - 1
    for index, address in enumerate(addresses):
        tokens = _mailbox(address, utf8)
        if index < last:
            tokens = (*tokens[:-1], tokens[-1] + ",")
        segments.extend((" ", token) for token in tokens)
    return fold(name, segments)


def _param(attribute: str, value: str) -> list[str]:
    """``attribute="value"``, or RFC 2231 ``attribute*=utf-8''…``, split in sections if long."""
    _check_text(value, f"parameter {attribute}")
    if value.isascii():
        if len(value) <= _PARAM_CHUNK:
            return [f"{attribute}={_quoted(value)}"]
        chunks = [value[i : i + _PARAM_CHUNK] for i in range(0, len(value), _PARAM_CHUNK)]
        return [f"{attribute}*{n}={_quoted(chunk)}" for n, chunk in enumerate(chunks)]
    encoded = quote(value.encode(), safe=_PARAM_SAFE)
    if len(encoded) <= _PARAM_CHUNK:
        return [f"{attribute}*=utf-8''{encoded}"]
    chunks, start = [], 0
    while start < len(encoded):
        stop = min(start + _PARAM_CHUNK, len(encoded))
        percent = encoded.rfind("%", stop - 2, stop)
        if percent != -1 and stop < len(encoded):  # never split a %XX triple
            stop = percent
        chunks.append(encoded[start:stop])
        start = stop
    sections = [f"{attribute}*0*=utf-8''{chunks[0]}"]
    sections.extend(f"{attribute}*{n}*={chunk}" for n, chunk in enumerate(chunks[1:], 1))
    return sections


def _with_params(name: str, value: str, params: list[str]) -> str:
    tokens = [value, *params]
    segments = [(" ", f"{token};") for token in tokens[:-1]]
    segments.append((" ", tokens[-1]))
    return fold(name, segments)


@lru_cache(maxsize=512)
def type_field(content_type: str, charset: str | None = None, boundary: str | None = None) -> str:
    params = []
    if charset is not None:
        params.append(f'charset="{charset}"')
    if boundary is not None:
        params.append(f'boundary="{boundary}"')
    return _with_params("Content-Type", content_type, params)


@lru_cache(maxsize=512)
def disposition_field(filename: str | None) -> str:
    params = _param("filename", filename) if filename else []
    return _with_params("Content-Disposition", "attachment", params)
