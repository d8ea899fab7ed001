"""Email addresses: check one, refuse anything that could inject, encode the domain with IDNA.

An address given by a user is parsed with the standard library's RFC 5322 header parser. It must
be exactly one mailbox with no parse defects, that an SMTP envelope can carry (RFC 5321 §4.1.2,
``mailout.mailbox``); its domain is IDNA-encoded so it can travel in
ASCII headers and commands; a non-ASCII local part is kept as it is and marks the message as
needing SMTPUTF8 (RFC 6531), since there is no ASCII form of it.
"""

from __future__ import annotations

import re
from email.errors import HeaderParseError, NonASCIILocalPartDefect
from email.header import decode_header, make_header
from email.headerregistry import Address as _StdAddress
from email.headerregistry import HeaderRegistry
from functools import lru_cache
from typing import Final, NamedTuple

from mailout.exceptions import BadHeaderError, InvalidAddressError, MessageTypeError
from mailout.mailbox import check_mailbox
from mailout.utils import lazy_text

__all__ = [
    "Address",
    "check_header_name",
    "check_header_value",
    "parse_address",
    "parse_address_list",
]

# The characters after which the stdlib quotes a local part (email._header_value_parser's
# DOT_ATOM_ENDS: specials and white space but the dot).
_DOT_ATOM_ENDS: Final = frozenset('()<>@,:;"[]\\ \t')
# Characters that end or split a header line; NUL is refused too since no MTA handles it sanely.
# Besides CR and LF, Python's str.splitlines() (which the email package uses) also breaks lines
# at these; none has a place in a header, so all are refused alike.
_FORBIDDEN: Final = re.compile("[\r\n\0\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
_registry: Final = HeaderRegistry()
# RFC 5321 §4.5.3.1: a path is at most 256 octets (so an address at most 254); a label 63.
MAX_ADDRESS_LENGTH: Final = 254
MAX_LABEL_LENGTH: Final = 63
# A plain ASCII ``local@domain`` (dot-atom on both sides) parses to itself; recognising it here
# skips the stdlib's header parser, which costs ~90 µs an address.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
# RFC 5321 §4.1.2 sub-domain (LDH), at most 63 octets (RFC 1035 §2.3.4).
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_PLAIN = rf"{_ATEXT}(?:\.{_ATEXT})*@{_LABEL}(?:\.{_LABEL})*"
_PLAIN_ADDRESS: Final = re.compile(_PLAIN)
# And ``Display Name <local@domain>`` whose name is ASCII words of atext separated by single
# spaces (no dots, quotes or other specials, which the stdlib parser treats specially).
_NAMED_ADDRESS: Final = re.compile(rf"({_ATEXT}(?: {_ATEXT})*) <({_PLAIN})>")


# RFC 5322 §2.2: a field name is printable US-ASCII except the colon. Longer than 76 characters,
# "Name: " alone would overflow the recommended 78-character line.
_HEADER_NAME: Final = re.compile(r"[!-9;-~]{1,76}")


def check_header_name(name: object) -> str:
    """Return ``name``, or raise BadHeaderError if it is not a valid header field name."""
    if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
        raise BadHeaderError(f"header name {name!r} is not a valid RFC 5322 field name")
    return name


def check_header_value(field: str, value: str) -> str:
    """Return ``value`` unchanged, or raise BadHeaderError if it could start a new header line.

    Encoded words (RFC 2047) are checked decoded too: the stdlib decodes them while folding
    and would write a line break hidden in ``=?utf-8?q?=0D=0A?=`` out raw.
    """
    if _FORBIDDEN.search(value) or ("=?" in value and _FORBIDDEN.search(_decoded(value))):
        raise BadHeaderError(f"{field}: {NO_NEWLINES} (got {value!r})")
    return value


# The standard library's wording (which Django 6.1 lets through), so code matching it works.
NO_NEWLINES: Final = (
    "Header values may not contain linefeed or carriage return characters (nor NUL or other "
    "line breaks)"
)


def _decoded(value: str) -> str:
    try:
        chunks = decode_header(value)
    except (UnicodeError, LookupError, HeaderParseError, ValueError):
        return value
    try:
        return str(make_header(chunks))
    except (UnicodeError, LookupError, HeaderParseError, ValueError):
        # make_header() refuses a mix it cannot rebuild (a raw non-ASCII character next to an
        # encoded word), yet the stdlib still decodes that word when it parses the header:
        # check each piece decoded on its own.
        return "".join(_piece(chunk, charset) for chunk, charset in chunks)


def _piece(chunk: str | bytes, charset: str | None) -> str:
    if isinstance(chunk, str):
        return chunk
    try:
        return chunk.decode(charset or "latin-1", "replace")
    except LookupError:
        return chunk.decode("latin-1")


class Address(NamedTuple):
    """One mailbox: a display name and ``local@domain`` with the domain in its ASCII form.

    Immutable; a named tuple rather than a frozen dataclass because one is made for every
    address of every message, and a frozen dataclass's ``__init__`` costs four times more.
    """

    display_name: str
    local_part: str
    domain: str

    @property
    def addr_spec(self) -> str:
        """``local@domain`` as it goes in SMTP commands: the local part quoted when it must be
        (``"a>b"@example.com``), the domain already IDNA-encoded."""
        local = self.local_part
        if local and self.domain and _DOT_ATOM_ENDS.isdisjoint(local):
            return f"{local}@{self.domain}"  # what the stdlib writes, without building it
        return self.to_stdlib().addr_spec

    @property
    def needs_smtputf8(self) -> bool:
        return not self.local_part.isascii()

    def to_stdlib(self) -> _StdAddress:
        return _StdAddress(self.display_name, self.local_part, self.domain)

    def __str__(self) -> str:
        return str(self.to_stdlib())


class PlainAddress(Address):
    """An Address of the common forms ``local@domain`` and ``Name <local@domain>`` as the
    quick path recognised them: ASCII atoms only (a dot-atom local part, LDH domain labels, a
    display name of atext words separated by single spaces, no ``=?``), so that the header
    writer can take it as it is."""

    __slots__ = ()


def encode_domain(domain: str, *, field: str) -> str:
    """IDNA-encode a domain (``bücher.example`` → ``xn--bcher-kva.example``)."""
    if domain.isascii():
        return domain
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        raise InvalidAddressError(f"{field}: domain {domain!r} cannot be IDNA-encoded") from None


_LOCAL_PART_ONLY: Final = "addr-spec local part with no domain"


@lru_cache(maxsize=4096)
def _parse(value: str, field: str) -> Address:
    try:
        header = _registry("to", value)
        addresses = header.addresses  # type: ignore[attr-defined]
        groups = header.groups  # type: ignore[attr-defined]
    except Exception:  # the stdlib parser raises IndexError and friends on some garbage
        raise InvalidAddressError(f"{field}: Invalid address {value!r}") from None
    if len(addresses) != 1 or len(groups) != 1 or groups[0].display_name is not None:
        raise InvalidAddressError(f"{field}: Invalid address {value!r}: not a single email address")
    # A non-ASCII local part is legal with SMTPUTF8 (RFC 6531), and a local part alone is
    # accepted as Django accepts it (#15042: some servers deliver it locally); every other
    # defect is not.
    defects = [
        d
        for d in header.defects
        if not isinstance(d, NonASCIILocalPartDefect) and str(d) != _LOCAL_PART_ONLY
    ]
    if defects:
        raise InvalidAddressError(f"{field}: Invalid address {value!r} ({defects[0]})")
    parsed = addresses[0]
    if not parsed.username:
        raise InvalidAddressError(f"{field}: Invalid address {value!r} (no local part)")
    if not parsed.domain and "@" in value:
        raise InvalidAddressError(f"{field}: Invalid address {value!r} (no domain)")
    address = Address(
        display_name=parsed.display_name,
        local_part=parsed.username,
        domain=encode_domain(parsed.domain, field=field),
    )
    check_header_value(field, address.display_name)  # after decoding of any RFC 2047 words
    # What RFC 5322 allows and an SMTP envelope cannot carry (a domain such as "a_b.example",
    # "<" or ">" in a quoted local part) is refused here, for every backend alike.
    check_mailbox(field, address.addr_spec)
    if len(address.addr_spec.encode()) > MAX_ADDRESS_LENGTH:
        raise InvalidAddressError(f"{field}: address {value!r} is longer than 254 octets")
    if any(len(label) > MAX_LABEL_LENGTH for label in address.domain.split(".")):
        raise InvalidAddressError(f"{field}: a domain label of {value!r} is over 63 octets")
    return address


def parse_address(value: object, *, field: str) -> Address:
    """Parse one address such as ``a@example.com`` or ``Ann <a@example.com>``.

    Also accepts a ``(display name, address)`` pair and a lazy string (Django's
    ``gettext_lazy``), as Django does, and a local part alone (``"webmaster"``).
    """
    value = lazy_text(value)
    if isinstance(value, tuple | list) and len(value) == 2:
        name, addr = value
        if not isinstance(name, str) or not isinstance(addr, str):
            raise MessageTypeError(f"{field}: a (name, address) pair must hold two strings")
        check_header_value(field, name)
        check_header_value(field, addr)
        bare = _parse(addr, field)
        if bare.display_name:
            raise InvalidAddressError(f"{field}: {addr!r} in a (name, address) pair has a name")
        return Address(name, bare.local_part, bare.domain)
    if not isinstance(value, str):
        raise MessageTypeError(f"{field}: expected an address string, got {type(value).__name__}")
    if "=?" not in value:  # anything like an encoded word takes the careful path
        quick = _quick_seen.get(value)
        if quick is None:
            quick = _quick(value)
        if quick is not None:
            return quick
    if _FORBIDDEN.search(value):
        raise BadHeaderError(f"{field}: Invalid address {value!r}: {NO_NEWLINES}")
    check_header_value(field, value)
    if not value.strip():
        raise InvalidAddressError(f"{field}: Invalid address: empty")
    return _parse(value, field)


_new_plain = tuple.__new__  # a named tuple's own __new__ is Python code, this is not
# The addresses _quick() recognised lately: a sender is the same for every message of a batch.
_quick_seen: dict[str, Address] = {}
_QUICK_SEEN_MAX: Final = 256


def _quick(value: str) -> Address | None:
    """The common forms, without the stdlib parser (~100 µs an address); None for the rest.

    The regular expressions bound each label to 63 octets; the address's length is checked here.
    """
    if value[-1:] != ">" and _PLAIN_ADDRESS.fullmatch(value):
        name, addr_spec = "", value
    else:
        named = _NAMED_ADDRESS.fullmatch(value)
        if named is None:
            return None
        name, addr_spec = named[1], named[2]
    if len(addr_spec) > MAX_ADDRESS_LENGTH:
        return None
    local, _, domain = addr_spec.rpartition("@")
    address: Address = _new_plain(PlainAddress, (name, local, domain))
    if len(_quick_seen) >= _QUICK_SEEN_MAX:
        _quick_seen.clear()  # (threads: dict operations are atomic; a lost entry costs a parse)
    _quick_seen[value] = address
    return address


def parse_address_list(values: object, *, field: str) -> list[Address]:
    if isinstance(values, str):
        raise MessageTypeError(f'"{field}" argument must be a list or tuple, not a string')
    if not isinstance(values, list | tuple):
        raise MessageTypeError(
            f'"{field}" argument must be a list or tuple, not {type(values).__name__}'
        )
    return [parse_address(v, field=field) for v in values]
