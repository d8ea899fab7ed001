"""The fast serialiser: an EmailMessage straight to RFC 5322 / MIME bytes, with CRLF line ends.

``render(message)`` writes the same message the standard-library path writes
(``serialize(message.message())``): same header fields with the same decoded values, same MIME
tree, parameters and transfer encodings, same decoded payloads. Only the boundaries, the
Message-ID and the folding of long lines may differ. It checks its input with the same
functions as the slow path (``parse_address``, ``check_header_value``, the field-name rule),
and writes nothing the slow path would refuse.

Where an input is unusual enough that the fast path cannot be sure of that promise, it hands
the message to the slow path, per message, and counts why in :data:`stats`:

* the class overrides ``message()`` or another step of building it;
* a charset other than ``utf-8`` or ``us-ascii``;
* a MIME part object, or a ``message/*`` or ``multipart/*`` type, in the attachments; bytes
  declared ``text/*``; a MIME type or subtype that is not a plain token;
* an extra header the standard library parses as structured (Date, Content-*, MIME-Version,
  address fields, …; a plain ``<local@domain>`` Message-ID is the exception);
* header text holding ``=?`` (the standard library decodes what looks like an encoded word),
  control or separator characters, leading or trailing spaces, or a word that cannot be folded
  into 998 octets; display names with doubled spaces; a non-ASCII local part without SMTPUTF8;
* any input the fast path refuses: the slow path then raises its own error (so both paths
  raise the same exception type), or, if it accepts the message after all, sends its bytes.
"""

from __future__ import annotations

import datetime
import hashlib
import itertools
import logging
import os
import random
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.headerregistry import HeaderRegistry
from email.message import Message
from email.utils import format_datetime
from typing import Any, Final

from mailout._wire.body import AttachmentCache, base64_body, text_body
from mailout._wire.headers import (
    Fallback,
    address_field,
    disposition_field,
    message_id_field,
    type_field,
    unstructured_field,
)
from mailout.address import (
    Address,
    check_header_name,
    check_header_value,
    parse_address,
    parse_address_list,
)
from mailout.conf import settings
from mailout.exceptions import SMTPUTF8NotSupportedError
from mailout.message import (
    EmailAttachment,
    EmailMessage,
    EmailMultiAlternatives,
    _header_text,
    leaf_content,
    local_zone,
    refuse_bcc_header,
)
from mailout.utils import DNS_NAME, lazy_text
from mailout.wireform import _check_wire_form, build, serialize

__all__ = [
    "WireStats",
    "attachment_cache",
    "render",
    "render_fast",
    "render_message",
    "stats",
]

log = logging.getLogger(__name__)

_CHARSETS: Final = frozenset({"utf-8", "us-ascii"})
# RFC 2045 §5.1 tokens, restricted to characters no parser treats specially.
_TOKEN: Final = re.compile(r"[A-Za-z0-9!#$&^_.+-]+")
# Every field the standard library parses (and may rewrite) is structured; Subject is not, and
# a plain Message-ID is written as given.
_STRUCTURED: Final = frozenset(HeaderRegistry().registry) - {"subject", "message-id"}
# The steps of EmailMessage.message(); a subclass overriding any of them goes the slow way.
_STEPS: Final = ("_set_content", "_fill_body", "_attachment_part", "_set_headers")
_STEPS_TOO: Final = ("_header_addresses", "_charset")
_kinds: dict[type[EmailMessage], bool | str] = {}
# A bare ASCII addr-spec with a dot-atom local part and LDH domain labels: the standard
# library's parser (89 µs for each new address) would return it unchanged, so it is taken as
# it is; anything else, "=?" included, goes through parse_address. tests/wire checks both agree.


@dataclass
class WireStats:
    """How many messages took the fast path, how many fell back, and why."""

    fast: int = 0
    fallbacks: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def record(self, reason: str | None) -> None:
        with self._lock:
            if reason is None:
                self.fast += 1
            else:
                self.fallbacks += 1
                self.reasons[reason] += 1

    def reset(self) -> None:
        with self._lock:
            self.fast = self.fallbacks = 0
            self.reasons.clear()


stats = WireStats()
attachment_cache = AttachmentCache()


def render(
    message: EmailMessage, *, smtputf8: bool = False, boundary_seed: int | None = None
) -> bytes:
    """The wire form of ``message``: what ``serialize(message.message(), smtputf8=…)`` writes.

    ``smtputf8=True`` writes UTF-8 in header fields as ``policy.SMTPUTF8`` does (RFC 6532);
    ``boundary_seed`` makes the MIME boundaries reproducible (for tests; unpredictable if None).
    A message that carries ``wire_bytes`` (one read back from the queue) is those bytes.
    """
    stored = _stored_bytes(message)
    if stored is not None:
        return stored
    data, reason = _fast(message, smtputf8, boundary_seed)
    if data is not None:
        return data
    data = serialize(build(message, smtputf8=smtputf8), smtputf8=smtputf8)
    if reason.startswith("refused"):
        log.warning("the fast path refused a message the standard library accepts: %s", reason)
    return data


def render_fast(
    message: EmailMessage, *, smtputf8: bool = False, boundary_seed: int | None = None
) -> bytes | None:
    """The fast path alone: ``render()``'s bytes, or None where ``render()`` would fall back.

    For a caller with a slow path of its own (``mailout.django`` falls back to Django's own
    serialisation). Nothing is raised for bad input: the caller's slow path decides what to
    raise. The decision is counted in :data:`stats` as ``render()`` counts it.
    """
    stored = _stored_bytes(message)
    if stored is not None:
        return stored
    return _fast(message, smtputf8, boundary_seed)[0]


def _fast(message: EmailMessage, smtputf8: bool, seed: int | None) -> tuple[bytes | None, str]:
    try:
        data = _render(message, smtputf8, seed)
    except Fallback as exc:
        reason = exc.reason
    except Exception as exc:  # refused (or unforeseen): the slow path decides what to raise
        reason = f"refused by the fast path ({type(exc).__name__})"
    else:
        stats.record(None)
        return data, ""
    stats.record(reason)
    return None, reason


def check(message: EmailMessage) -> None:
    """Raise what ``render()`` would raise for bad input, without building the body.

    Lets a backend refuse a whole batch before sending any of it, then render and send it in
    chunks, so that no second copy of every message is held at once.
    """
    if _stored_bytes(message) is not None:
        return
    try:
        if _has_alternatives(type(message)):
            for content, mimetype in message.alternatives:  # type: ignore[attr-defined]
                if not isinstance(content, str | bytes):
                    raise Fallback("alternative content is not str or bytes")
                _mime_type(mimetype, "alternative mimetype")
        if not isinstance(lazy_text(message.body), str):
            raise Fallback("body is not a string")
        if any(not isinstance(a, EmailAttachment) for a in message.attachments):
            raise Fallback("an attachment is a MIME part")
        _header_fields(message, utf8=True)
        for value, what in (
            (message.content_subtype, "content_subtype"),
            (message.mixed_subtype, "mixed_subtype"),
            (getattr(message, "alternative_subtype", "alternative"), "alternative_subtype"),
        ):
            _token(value, what)
    except Fallback:
        build(message)  # an unusual message: the standard library's checks decide


def _stored_bytes(message: EmailMessage) -> bytes | None:
    """The bytes of a message rendered once already (``mailout.queue``): sent exactly as they
    were stored, so its Message-ID and Date never change between attempts."""
    data = getattr(message, "wire_bytes", None)
    return data if isinstance(data, bytes) else None


def render_message(message: EmailMessage, *, smtputf8_ok: bool, linesep: str = "\r\n") -> bytes:
    """Drop-in for ``message.serialize_message``: refuse a message needing SMTPUTF8 when the
    receiver lacks it, else render it (in SMTPUTF8 mode only when it needs it)."""
    needs_utf8 = message.needs_smtputf8()
    if needs_utf8 and not smtputf8_ok:
        raise SMTPUTF8NotSupportedError(
            "the message has a non-ASCII address local part and the server does not offer SMTPUTF8"
        )
    data = render(message, smtputf8=needs_utf8)
    return data if linesep == "\r\n" else data.replace(b"\r\n", linesep.encode())


# -- the fast path -------------------------------------------------------------------------------


def _has_alternatives(cls: type[EmailMessage]) -> bool:
    """Whether the class renders alternatives; Fallback if it builds its message its own way."""
    kind = _kinds.get(cls)
    if kind is None:
        kind = _classify(cls)
        _kinds[cls] = kind
    if isinstance(kind, str):
        raise Fallback(kind)
    return kind


def _classify(cls: type[EmailMessage]) -> bool | str:
    if cls.message is not EmailMessage.message:
        return "message() overridden"
    for name in (*_STEPS, *_STEPS_TOO):
        if getattr(cls, name) is not getattr(EmailMessage, name):
            return f"{name}() overridden"
    alternatives = cls._alternative_parts
    if alternatives is EmailMultiAlternatives._alternative_parts:
        return True
    if alternatives is EmailMessage._alternative_parts:
        return False
    return "_alternative_parts() overridden"


def _token(value: object, what: str) -> str:
    if not isinstance(value, str) or not _TOKEN.fullmatch(value):
        raise Fallback(f"{what} is not a plain MIME token")
    return value


def _leaf(fields: list[str], body: bytes) -> bytes:
    return ("\r\n".join(fields) + "\r\n\r\n").encode("ascii") + body


def _text_part(
    text: str, subtype: str, charset: str, disposition: str | None, raw: list[bytes]
) -> bytes:
    cte, body = text_body(text, charset)
    fields = [type_field(f"text/{subtype}", charset), f"Content-Transfer-Encoding: {cte}"]
    if disposition is not None:
        fields.append(disposition)
    if cte in ("7bit", "8bit"):
        raw.append(body)  # may hold anything, so the boundaries are checked against it
    return _leaf(fields, body)


def _bytes_part(data: bytes, mimetype: str, disposition: str | None) -> bytes:
    fields = [type_field(mimetype), "Content-Transfer-Encoding: base64"]
    if disposition is not None:
        fields.append(disposition)
    return _leaf(fields, base64_body(data))


def _mime_type(mimetype: object, what: str) -> tuple[str, str]:
    if not isinstance(mimetype, str):
        raise Fallback(f"{what} MIME type is not a string")
    basetype, _, subtype = mimetype.partition("/")
    _token(basetype, f"{what} MIME type")
    _token(subtype, f"{what} MIME subtype")
    if basetype.lower() in ("message", "multipart"):
        raise Fallback(f"a {basetype.lower()}/* {what}")
    return basetype, subtype


def _leaf_content(
    content: object, basetype: str, subtype: str, encoding: str, what: str
) -> tuple[str | bytes, str]:
    """Django's str/bytes rule for a leaf part (``message.leaf_content``), type checks first."""
    if not isinstance(content, str | bytes):
        raise Fallback(f"{what} content that is neither str nor bytes")
    return leaf_content(content, f"{basetype}/{subtype}", encoding, what)


def _alternative(content: object, mimetype: object, charset: str, raw: list[bytes]) -> bytes:
    basetype, subtype = _mime_type(mimetype, "alternative")
    data, mimetype = _leaf_content(content, basetype, subtype, charset, "alternative")
    if isinstance(data, str):
        return _text_part(data, subtype, charset, None, raw)
    return _bytes_part(data, mimetype, None)


def _attachment(attachment: object, charset: str, raw: list[bytes]) -> bytes:
    if isinstance(attachment, Message):
        raise Fallback("a MIME part in attachments")
    if not isinstance(attachment, tuple) or len(attachment) != 3:
        raise Fallback("an attachment that is not (filename, content, mimetype)")
    filename, content, mimetype = attachment
    basetype, subtype = _mime_type(mimetype, "attachment")
    if filename is not None and not isinstance(filename, str):
        raise Fallback("an attachment file name that is not a string")
    if filename:
        check_header_value("attachment filename", filename)
    if not isinstance(content, str | bytes):
        raise Fallback("attachment content that is neither str nor bytes")
    cacheable = len(content) >= attachment_cache.min_size
    key = (mimetype, filename, charset)
    if cacheable and (cached := attachment_cache.get(content, *key)) is not None:
        part, is_raw = cached
        if is_raw:
            raw.append(part)
        return part
    disposition = disposition_field(filename or None)
    before = len(raw)
    data, mimetype = _leaf_content(content, basetype, subtype, "utf-8", "attachment")
    if isinstance(data, str):
        part = _text_part(data, subtype, charset, disposition, raw)
    else:
        part = _bytes_part(data, mimetype, disposition)
    if cacheable:
        attachment_cache.put(content, key, (part, len(raw) > before))
    return part


class _BoundarySource:
    """Unpredictable boundaries without a system call each: a keyed BLAKE2 hash of a counter.

    The key comes from ``secrets`` once per process (again after a fork), so boundaries cannot
    be guessed from earlier messages; os.urandom() per message costs more than a whole render.
    """

    def __init__(self) -> None:
        self._pid = -1
        self._key = b""
        self._counter = itertools.count()

    def token(self) -> str:
        if self._pid != os.getpid():
            self._key, self._pid = secrets.token_bytes(32), os.getpid()
        count = next(self._counter).to_bytes(8, "big")
        return hashlib.blake2b(count, key=self._key, digest_size=16).hexdigest()


_boundary_source = _BoundarySource()


def _boundaries(count: int, raw: Sequence[bytes], seed: int | None) -> list[str]:
    """Fresh boundaries found in no 7bit/8bit body (RFC 2046 §5.1.1).

    "=_" never occurs in base64 or quoted-printable text, where "=" is padding or an escape.
    """
    rng = random.Random(seed) if seed is not None else None
    chosen: list[str] = []
    while len(chosen) < count:
        token = f"{rng.getrandbits(128):032x}" if rng is not None else _boundary_source.token()
        boundary = f"=_{token}"
        encoded = boundary.encode()
        if boundary not in chosen and not any(encoded in body for body in raw):
            chosen.append(boundary)
    return chosen


def _multipart_body(parts: list[bytes], boundary: str) -> bytes:
    delimiter = b"--" + boundary.encode()
    return b"".join(
        (
            delimiter,
            b"\r\n",
            (b"\r\n" + delimiter + b"\r\n").join(parts),
            b"\r\n",
            delimiter,
            b"--\r\n",
        )
    )


_sequence = itertools.count()
_ids = random.Random()
_date_cache: tuple[int, object, str] = (-1, None, "")


def _date(localtime: bool) -> str:
    global _date_cache
    second = int(time.time())
    zone = local_zone() if localtime else datetime.UTC
    cached = _date_cache
    if cached[0] == second and cached[1] is zone:
        return cached[2]
    # UTC is "+0000" (RFC 5322 §3.3: "-0000" would say the zone is unknown).
    moment = datetime.datetime.fromtimestamp(second, datetime.UTC)
    text = format_datetime(moment.astimezone(zone))
    _date_cache = (second, zone, text)
    return text


def _message_id() -> str:
    # Unique by time, process, a counter and chance, like email.utils.make_msgid().
    unique = f"{time.time_ns() // 1000}.{os.getpid()}.{next(_sequence)}.{_ids.getrandbits(40)}"
    return f"<{unique}@{DNS_NAME.get_fqdn()}>"


def _address_list(values: object, field: str) -> list[Address]:
    if not isinstance(values, list | tuple):
        return parse_address_list(values, field=field)  # raises the slow path's error
    return [parse_address(value, field=field) for value in values]


def _header_fields(message: EmailMessage, utf8: bool) -> list[str]:
    """The message's own header fields, checked in the order ``_set_headers`` checks them."""
    extra: dict[str, tuple[str, str]] = {}
    for name, value in message.extra_headers.items():
        check_header_name(name)
        refuse_bcc_header(name)
        extra[name.lower()] = (name, check_header_value(name, _header_text(value)))
    subject = lazy_text(message.subject)
    if not isinstance(subject, str):
        raise Fallback("subject is not a string")
    check_header_value("subject", subject)
    from_email = lazy_text(message.from_email)
    if not isinstance(from_email, str):
        raise Fallback("from_email is not a string")
    sender = parse_address(from_email, field="from_email")
    recipients: list[tuple[str, list[Address]]] = [
        ("To", _address_list(message.to, "to")),
        ("Cc", _address_list(message.cc, "cc")),
        ("Reply-To", _address_list(message.reply_to, "reply_to")),
    ]
    _address_list(message.bcc, "bcc")  # checked: Bcc goes only in the envelope
    for key, (name, _) in extra.items():
        if key in _STRUCTURED:
            raise Fallback(f"{name.lower()} given in headers")
    fields = []
    if "subject" not in extra:
        fields.append(unstructured_field("Subject", subject, utf8))
    fields.append(address_field("From", [sender], utf8))
    fields.extend(address_field(name, found, utf8) for name, found in recipients if found)
    fields.append(f"Date: {_date(bool(settings.EMAIL_USE_LOCALTIME))}")
    if "message-id" not in extra:
        fields.append(f"Message-ID: {_message_id()}")
    for key, (name, value) in extra.items():
        if key == "message-id":
            fields.append(message_id_field(name, value))
        else:
            fields.append(unstructured_field(name, value, utf8))
    return fields


def _render(message: EmailMessage, utf8: bool, seed: int | None) -> bytes:
    has_alternatives = _has_alternatives(type(message))
    charset = message.encoding or settings.DEFAULT_CHARSET
    if charset not in _CHARSETS:
        raise Fallback(f"charset {charset!r}")
    raw: list[bytes] = []
    alternatives: list[bytes] = []
    if has_alternatives:
        alternatives_of: Any = message
        alternatives = [
            _alternative(content, mimetype, charset, raw)
            for content, mimetype in alternatives_of.alternatives
        ]
    body = lazy_text(message.body)
    if not isinstance(body, str):
        raise Fallback("body is not a string")
    subtype = _token(message.content_subtype, "content_subtype")
    attachments = [_attachment(a, charset, raw) for a in message.attachments]
    fields = _header_fields(message, utf8)
    if not alternatives and not attachments:
        cte, payload = text_body(body, charset)
        top = [
            type_field(f"text/{subtype}", charset),
            f"Content-Transfer-Encoding: {cte}",
            "MIME-Version: 1.0",
            *fields,
        ]
    else:
        # Django 6.1: an empty body next to alternatives or attachments is left out.
        parts = [_text_part(body, subtype, charset, None, raw)] if body else []
        outer, inner = _boundaries(2, raw, seed)
        if alternatives:
            alt = _token(getattr(message, "alternative_subtype", "alternative"), "subtype")
            content_type = type_field(f"multipart/{alt}", boundary=inner)
            payload = _multipart_body([*parts, *alternatives], inner)
            parts = [_leaf([content_type], payload)]
        if attachments:
            mixed = _token(message.mixed_subtype, "mixed_subtype")
            content_type = type_field(f"multipart/{mixed}", boundary=outer)
            payload = _multipart_body([*parts, *attachments], outer)
        top = ["MIME-Version: 1.0", content_type, *fields]
    head = ("\r\n".join(top) + "\r\n\r\n").encode("utf-8" if utf8 else "ascii")
    # The slow path's last line of defence, on the header block (bodies are built line-safe).
    _check_wire_form(head, [f.partition(":")[0].lower() for f in top])
    return head + payload
