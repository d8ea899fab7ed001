"""Whether a string is a mailbox that can go between the angle brackets of MAIL FROM / RCPT TO.

Used by ``address`` (every address a message holds) and by ``smtp.Envelope`` (every address
the SMTP client is handed), so both refuse the same things. It sits in the message layer,
below both, and needs only the standard library and ``mailout.exceptions``.

RFC 5321 §4.1.2 with RFC 6531 §3.3 (SMTPUTF8: UTF-8 in atoms, quoted strings and domain
labels). Anything else is refused, so that no address can smuggle ESMTP parameters
(``t@example.com> NOTIFY=SUCCESS``) or a second command into the line it is written on.

One deliberate narrowing: ``<`` and ``>`` are refused inside a quoted local part too. RFC 5321
allows ``"a>b"@example.com``, but a server that looks for the first ``>`` would end the path
there and read the rest as parameters; no real mailbox needs them.

One deliberate widening: a local part alone (``webmaster``, RFC 5321's own ``Postmaster``) is
accepted, as Django accepts it (its ticket #15042: some servers deliver it locally). It is the
same grammar without the ``@domain``, so it can smuggle nothing either.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Final

from mailout.exceptions import BadHeaderError, InvalidAddressError, MessageTypeError

__all__ = ["MAX_MAILBOX_OCTETS", "check_mailbox"]

# RFC 5321 §4.5.3.1.3: a path (the mailbox and its angle brackets) is at most 256 octets.
MAX_MAILBOX_OCTETS: Final = 254

# UTF8-non-ascii (RFC 6531 §3.3), minus what no parser treats as text: C1 controls, lone
# surrogates (raw bytes smuggled in by "surrogateescape") and any kind of white space or line
# separator (a server that decodes UTF-8 and then splits on white space would split there).
_U8 = r"[^\x00-\x9f\s\ud800-\udfff]"
_ATEXT = rf"(?:[A-Za-z0-9!#$%&'*+/=?^_`{{|}}~-]|{_U8})"
_DOT_STRING = rf"{_ATEXT}+(?:\.{_ATEXT}+)*"
# qtextSMTP and quoted-pairSMTP, without "<" (0x3c) and ">" (0x3e): see the module docstring.
_QCONTENT = rf"(?:[\x20\x21\x23-\x3b\x3d\x3f-\x5b\x5d-\x7e]|{_U8}|\\[\x20-\x3b\x3d\x3f-\x7e])"
_QUOTED = rf'"{_QCONTENT}*"'
_LET_DIG = rf"(?:[A-Za-z0-9]|{_U8})"
_SUB_DOMAIN = rf"{_LET_DIG}(?:(?:[A-Za-z0-9-]|{_U8})*{_LET_DIG})?"
_DOMAIN = rf"{_SUB_DOMAIN}(?:\.{_SUB_DOMAIN})*"
_MAILBOX: Final = re.compile(
    rf"(?:{_DOT_STRING}|{_QUOTED})(?:@(?:{_DOMAIN}|\[([\x21-\x5a\x5e-\x7e]+)\]))?"
)
_LOCAL: Final = re.compile(rf"{_DOT_STRING}|{_QUOTED}")
# The same for plain ASCII dot-atom@domain, the usual case: one quick match.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_PLAIN: Final = re.compile(
    rf"[A-Za-z0-9!#$%&'*+/=?^_`{{|}}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{{|}}~-]+)*"
    rf"@{_LABEL}(?:\.{_LABEL})*"
)
# General-address-literal (RFC 5321 §4.1.3): Standardized-tag ":" 1*dcontent.
_GENERAL_LITERAL: Final = re.compile(r"[A-Za-z0-9-]*[A-Za-z0-9]:[\x21-\x5a\x5e-\x7e]+")
_IPV4: Final = re.compile(
    r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(?:\.(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}"
)


def check_mailbox(field: str, address: object, *, null: bool = False) -> None:
    """Raise unless ``address`` is a mailbox fit for an SMTP envelope (or a local part alone).

    ``null`` allows ``""``, the null reverse-path of MAIL FROM:<> (RFC 5321 §4.5.5).
    Errors name ``field``: BadHeaderError for CR, LF or NUL (a command injection),
    InvalidAddressError for anything else, MessageTypeError for a value that is not a str.
    """
    if type(address) is str and len(address) <= MAX_MAILBOX_OCTETS and _PLAIN.fullmatch(address):
        return  # the usual ASCII local@domain (no control character can match)
    if not isinstance(address, str):
        raise MessageTypeError(f"{field} must be an address string, not {type(address).__name__}")
    if "\r" in address or "\n" in address or "\0" in address:
        raise BadHeaderError(f"{field} contains CR, LF or NUL: {address!r}")
    if null and address == "":
        return
    problem = _problem(address)
    if problem is not None:
        raise InvalidAddressError(
            f"{field}: {address!r} is not a mailbox an SMTP envelope can carry "
            f"(RFC 5321 §4.1.2): {problem}"
        )


def _problem(address: str) -> str | None:
    if not address:
        return "it is empty"
    if len(address.encode("utf-8", "surrogatepass")) > MAX_MAILBOX_OCTETS:
        return f"it is longer than {MAX_MAILBOX_OCTETS} octets"
    match = _MAILBOX.fullmatch(address)
    if match is None:
        return _explain(address)
    literal = match[1]
    if literal is not None and not _address_literal(literal):
        return f"[{literal}] is not an IPv4, IPv6 or tagged address literal"
    return None


def _address_literal(text: str) -> bool:
    if _IPV4.fullmatch(text):
        return True
    if text[:5].lower() == "ipv6:":
        try:
            ipaddress.IPv6Address(text[5:])
        except ValueError:
            return False
        return True
    return _GENERAL_LITERAL.fullmatch(text) is not None


def _explain(address: str) -> str:
    """Why the grammar refused ``address``, in words a user can act on."""
    for char in ("<", ">"):
        if char in address:
            return f"{char!r} has no place in a mailbox (it would end the path early)"
    if any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in address):
        return "a control character"
    if any(ch.isspace() for ch in address):
        return "white space (only a plain space, inside a quoted local part, is allowed)"
    local, at, domain = address.rpartition("@")
    if not at:
        return f"{address!r} is neither dot-separated atoms nor a quoted string"
    if not local:
        return "no local part"
    if not domain:
        return "no domain"
    if _LOCAL.fullmatch(local) is None:
        return f"the local part {local!r} is neither dot-separated atoms nor a quoted string"
    return (
        f"the domain {domain!r} is not dot-separated labels of letters, digits and inner "
        "hyphens, nor an [address literal]"
    )
