"""The standard library's path from a message to bytes, and the wire-form checks it passes.

``serialize()`` is the slow path (``mailout.wire`` is the fast one and falls back to it); every
message it writes is checked for what SMTP and RFC 5322 require of the bytes themselves.
"""

from __future__ import annotations

import email.policy
import inspect
import re
from email.headerregistry import AddressHeader, UnstructuredHeader
from email.message import Message
from email.policy import EmailPolicy
from typing import TYPE_CHECKING, Any

from mailout._wire.headers import Fallback, address_field, encoded_words, fold
from mailout.address import Address
from mailout.exceptions import (
    BadHeaderError,
    InvalidMessageError,
    MailoutError,
    SMTPUTF8NotSupportedError,
)

if TYPE_CHECKING:
    from mailout.message import EmailMessage

__all__ = ["MAX_LINE", "build", "check_head", "serialize", "serialize_message"]

MAX_LINE = 998  # RFC 5322 §2.1.1: the hard limit of a line, CRLF excluded


def serialize(msg: Message, *, smtputf8: bool = False, linesep: str = "\r\n") -> bytes:
    """The wire form of ``msg``: CRLF lines, 998-octet hard limit, RFC 2047 unless SMTPUTF8."""
    policy = _SMTPUTF8 if smtputf8 else _SMTP
    try:
        data = msg.as_bytes(policy=policy)
    except MailoutError:
        raise
    except Exception as exc:  # the generator re-parses values and can fail deep inside
        raise InvalidMessageError(f"the message cannot be serialised: {exc}") from exc
    _check_wire_form(data, [name.lower() for name in msg])
    return data if linesep == "\r\n" else data.replace(b"\r\n", linesep.encode())


_UNFOLD = re.compile(r"\r?\n(?=[ \t])")


class _LosslessPolicy(EmailPolicy):
    """``policy.SMTP`` whose folded fields read back as what they were given.

    The standard library's folder (3.11 to 3.13.0 at least) can garble a field it refolds:
    it puts the whitespace between two words it encodes outside the encoded words, where a
    reader drops it (CPython gh-144156: "a é b" arrives as "aéb"), and it drops the quotes
    of a display name it splits (CPython gh-80222: ``"x…x, evil@attacker.example" <d@e.f>``
    arrives as two mailboxes, one of them not the caller's). Each unstructured or address
    field is read back here; one that changed is written again by mailout's own writers
    (``_wire.headers``), or refused when they cannot write it.
    """

    def fold_binary(self, name: str, value: Any) -> bytes:
        folded = super().fold_binary(name, value)
        if isinstance(value, AddressHeader):
            return self._address_field(name, value, folded)
        # Only a field with encoded words can lose text that way; the others cost nothing.
        if b"=?" not in folded or not isinstance(value, UnstructuredHeader):
            return folded
        text = str(value)
        # CR, LF or NUL decoded from an encoded word the caller gave: not ours to carry as
        # text; _check_wire_form refuses what the standard library wrote for it.
        if any(char in text for char in "\r\n\0") or _decodes_to(self, folded) == text.strip(" \t"):
            return folded
        try:
            field = fold(name, [(" ", word) for word in encoded_words(text)])
        except Fallback:  # a field name too long for any line: _check_wire_form refuses it
            return folded
        return self._encode(field)

    def _address_field(self, name: str, value: AddressHeader, folded: bytes) -> bytes:
        if folded.count(b"\n") == 1:
            return folded  # one line: the field as parsed, written whole, never split
        # The mailboxes are compared, not their display names: the standard library's parser
        # reads a space into a name between two encoded words that RFC 2047 §6.2 drops.
        wanted = _mailboxes(value)
        try:
            written = _mailboxes(_read_back(self, folded))
        except Exception:
            written = ()
        if not wanted or written == wanted:
            return folded
        if any(group.display_name is not None for group in value.groups):
            return folded  # a named group: mailout never writes one (a caller's own message())
        # Runs of spaces in a name are one space to a reader; mailout's writer takes no others.
        mailboxes = [
            Address(" ".join(filter(None, a.display_name.split(" "))), a.username, a.domain)
            for a in value.addresses
        ]
        try:
            field = address_field(name, mailboxes, self.utf8)
        except Fallback as exc:
            raise BadHeaderError(
                f"{name}: the standard library would write this field garbled (its mailboxes "
                f"read back differently) and mailout cannot write it either ({exc.reason})"
            ) from None
        return self._encode(field)

    def _encode(self, field: str) -> bytes:
        return (field.replace("\r\n", self.linesep) + self.linesep).encode(
            "utf-8" if self.utf8 else "ascii"
        )


def _read_back(policy: EmailPolicy, folded: bytes) -> Any:
    """A field as a reader parses it: unfolded (RFC 5322 §2.2.3), then by its registered type."""
    line = _UNFOLD.sub("", folded.decode("utf-8" if policy.utf8 else "ascii", "surrogateescape"))
    name, _, value = line.rstrip("\r\n").partition(":")
    return policy.header_factory(name, value.strip(" \t"))


def _mailboxes(header: Any) -> tuple[tuple[str, str], ...]:
    return tuple((a.username, a.domain) for a in header.addresses)


def _decodes_to(policy: EmailPolicy, folded: bytes) -> str:
    """What a reader makes of an unstructured field: its encoded words decoded, the whitespace
    around the value (which carries no meaning) left out."""
    return str(_read_back(policy, folded)).strip(" \t")


_SMTP = _LosslessPolicy(linesep="\r\n")  # email.policy.SMTP's settings
_SMTPUTF8 = _SMTP.clone(utf8=True)


def _check_wire_form(data: bytes, names: list[str]) -> None:
    """The last line of defence: every line ends in CRLF and none is over 998 octets.

    The generator re-parses values while folding them and writes out what RFC 2047 words
    decode to; a CR or LF that appears that way is caught here, whatever field carried it.
    """
    crlf = data.count(b"\r\n")
    if data.count(b"\n") != crlf or data.count(b"\r") != crlf:
        raise BadHeaderError("a header value decodes to a line break; refusing to send it")
    head = data.partition(b"\r\n\r\n")[0]
    written = [
        line.split(b":", 1)[0].decode("ascii", "replace").lower()
        for line in head.split(b"\r\n")
        if line and line[:1] not in (b" ", b"\t")
    ]
    if sorted(written) != sorted(names):
        raise BadHeaderError("a header value decodes to an extra header line; refusing to send it")
    if b"\0" in head:
        raise BadHeaderError("a header value decodes to a NUL character; refusing to send it")
    _check_line_lengths(data, b"\r\n")


def check_head(head: bytes, fields: int) -> None:
    """``_check_wire_form`` for a header block that mailout wrote itself, field by field: the
    same promises, measured with counts (fused into rendering, no second pass over lines).

    ``head`` is ``fields`` fields, each ``Name: value`` possibly folded (CRLF then a space),
    and the empty line. A value that smuggled a line break in shows as a bare CR or LF, or
    as one more line break that is not a fold: one more line than there are fields.
    """
    crlf = head.count(b"\r\n")
    if head.count(b"\n") != crlf or head.count(b"\r") != crlf:
        raise BadHeaderError("a header value decodes to a line break; refusing to send it")
    folds = head.count(b"\r\n ") + head.count(b"\r\n\t")
    if crlf - folds != fields + 1 or not head.endswith(b"\r\n\r\n"):
        raise BadHeaderError("a header value decodes to an extra header line; refusing to send it")
    if b"\0" in head:
        raise BadHeaderError("a header value decodes to a NUL character; refusing to send it")
    if len(head) > MAX_LINE:
        _check_line_lengths(head, b"\r\n")


def _check_line_lengths(data: bytes, linesep: bytes) -> None:
    """Refuse a message with a line over 998 octets: MTAs reject it or split it, and a split
    header line can turn the rest of a value into a header of its own."""
    for line in data.split(linesep):
        if len(line) > MAX_LINE:
            name = line.split(b":", 1)[0][:40].decode("ascii", "replace")
            raise InvalidMessageError(
                f"a line of {len(line)} octets (over RFC 5322's 998) starting {name!r}: "
                "shorten that header or value"
            )


def build(message: EmailMessage, *, smtputf8: bool = False) -> Message:
    """``message.message()`` built with the policy it is sent with, as Django's smtp backend
    builds it (``message(policy=email.policy.SMTP)``): text encoded as base64 is then in
    canonical form, with CRLF line breaks (RFC 2045 §6.8), not the default policy's LF."""
    policy = email.policy.SMTPUTF8 if smtputf8 else email.policy.SMTP
    if _takes_policy(type(message)):
        return message.message(policy=policy)
    return message.message()  # a subclass's message() of Django's older signature


def _takes_policy(cls: type) -> bool:
    taking = _policy_kind.get(cls)
    if taking is None:
        try:
            parameters = inspect.signature(cls.message).parameters  # type: ignore[attr-defined]
        except (TypeError, ValueError):
            parameters = {}  # type: ignore[assignment]
        taking = "policy" in parameters or any(
            p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()
        )
        _policy_kind[cls] = taking
    return taking


_policy_kind: dict[type, bool] = {}


def serialize_message(message: EmailMessage, *, smtputf8_ok: bool, linesep: str = "\r\n") -> bytes:
    """Build and serialise ``message``; refuse if it needs SMTPUTF8 and the receiver lacks it."""
    needs_utf8 = message.needs_smtputf8()
    if needs_utf8 and not smtputf8_ok:
        raise SMTPUTF8NotSupportedError(
            "the message has a non-ASCII address local part and the server does not offer SMTPUTF8"
        )
    return serialize(build(message, smtputf8=needs_utf8), smtputf8=needs_utf8, linesep=linesep)
