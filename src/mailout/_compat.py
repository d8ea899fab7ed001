"""Django's older mail helpers, kept working for code that still uses them.

``SafeMIMEText``/``SafeMIMEMultipart`` (Django's ``email.mime`` classes before 6.0),
``forbid_multi_line_headers`` and ``sanitize_address`` (internal helpers that code imported from
``django.core.mail.message``). Django 6.1 deprecates them; mailout keeps them, without warnings.
``mailout.message`` re-exports them under Django's names.
"""

from __future__ import annotations

from email import _header_value_parser as parser
from email import charset as _charset
from email import generator
from email.errors import HeaderParseError
from email.header import Header
from email.headerregistry import Address as _StdAddress
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formataddr
from io import BytesIO, StringIO
from typing import Any

from mailout.address import check_header_name, check_header_value, encode_domain
from mailout.utils import lazy_text

__all__ = [
    "SafeMIMEMultipart",
    "SafeMIMEText",
    "forbid_multi_line_headers",
    "sanitize_address",
]

_MAX_LINE = 998  # RFC 5322 §2.1.1


def forbid_multi_line_headers(
    name: str, value: object, encoding: str | None = None
) -> tuple[str, str]:
    """Refuse a header whose name or value could start a new header line; return both."""
    check_header_name(name)
    return name, check_header_value(name, str(value))


def sanitize_address(address: object, encoding: str) -> str:
    """One address (``"Name <a@b>"``, ``"a@b"`` or a ``(name, address)`` pair) as header text.

    The display name is RFC 2047-encoded in ``encoding`` when not ASCII, the domain IDNA-encoded.
    Raises ``ValueError`` ("Invalid address …") for anything but exactly one address, and for a
    CR or LF in any part. A non-ASCII local part is kept as it is: RFC 2047 §5 forbids encoded
    words there, and only SMTPUTF8 can carry it.
    """
    if isinstance(address, tuple):
        name, spec = address
        if "@" not in spec:
            raise ValueError(f'Invalid address "{spec}"')
        local, domain = spec.rsplit("@", 1)
    else:
        text = str(lazy_text(address))
        try:
            token, rest = parser.get_mailbox(text)
        except (HeaderParseError, ValueError, IndexError):
            raise ValueError(f'Invalid address "{text}"') from None
        if rest:
            raise ValueError(f'Invalid address; only {token} could be parsed from "{text}"')
        name, local, domain = token.display_name or "", token.local_part, token.domain or ""
    if any(c in part for part in (name, local, domain) for c in "\r\n"):
        raise ValueError("Invalid address; address parts cannot contain newlines.")
    name = Header(name, None if name.isascii() else encoding).encode()
    domain = encode_domain(domain, field="address") if domain else domain
    spec = _StdAddress(username=local, domain=domain).addr_spec
    if not spec.isascii():
        return f"{name} <{spec}>" if name else spec  # formataddr() takes ASCII only
    return formataddr((name, spec))


def _as_string(message: Any, unixfrom: bool, linesep: str) -> str:
    # mangle_from_=False: a body line starting "From " is left alone (Django #13433).
    out = StringIO()
    generator.Generator(out, mangle_from_=False).flatten(message, unixfrom, linesep)
    return out.getvalue()


def _as_bytes(message: Any, unixfrom: bool, linesep: str) -> bytes:
    out = BytesIO()
    generator.BytesGenerator(out, mangle_from_=False).flatten(message, unixfrom, linesep)
    return out.getvalue()


def _utf8(long_lines: bool) -> _charset.Charset:
    # UTF-8 as 8bit text (base64 would draw spam filters' attention), or quoted-printable when
    # a line is too long to travel unencoded.
    charset = _charset.Charset("utf-8")
    charset.body_encoding = _charset.QP if long_lines else None  # type: ignore[assignment]
    return charset


class SafeMIMEText(MIMEText):
    """Django's pre-6.0 MIMEText: refuses headers holding newlines; UTF-8 text goes 8bit."""

    def __init__(self, _text: str, _subtype: str = "plain", _charset: str | None = None) -> None:
        self.encoding = _charset
        MIMEText.__init__(self, _text, _subtype=_subtype, _charset=_charset)

    def __setitem__(self, name: str, val: Any) -> None:
        forbid_multi_line_headers(name, val)
        MIMEText.__setitem__(self, name, val)

    def as_string(self, unixfrom: bool = False, linesep: str = "\n") -> str:  # type: ignore[override]
        return _as_string(self, unixfrom, linesep)

    def as_bytes(self, unixfrom: bool = False, linesep: str = "\n") -> bytes:  # type: ignore[override]
        return _as_bytes(self, unixfrom, linesep)

    def set_payload(self, payload: Any, charset: Any = None) -> None:
        if charset == "utf-8" and not isinstance(charset, _charset.Charset):
            long_lines = any(
                len(line.encode(errors="surrogateescape")) > _MAX_LINE
                for line in payload.splitlines()
            )
            charset = _utf8(long_lines)
        MIMEText.set_payload(self, payload, charset=charset)


class SafeMIMEMultipart(MIMEMultipart):
    """Django's pre-6.0 MIMEMultipart that refuses headers holding newlines."""

    def __init__(
        self,
        _subtype: str = "mixed",
        boundary: str | None = None,
        _subparts: Any = None,
        encoding: str | None = None,
        **_params: Any,
    ) -> None:
        self.encoding = encoding
        MIMEMultipart.__init__(self, _subtype, boundary, _subparts, **_params)

    def __setitem__(self, name: str, val: Any) -> None:
        forbid_multi_line_headers(name, val)
        MIMEMultipart.__setitem__(self, name, val)

    def as_string(self, unixfrom: bool = False, linesep: str = "\n") -> str:  # type: ignore[override]
        return _as_string(self, unixfrom, linesep)

    def as_bytes(self, unixfrom: bool = False, linesep: str = "\n") -> bytes:  # type: ignore[override]
        return _as_bytes(self, unixfrom, linesep)
