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
import logging
import threading
from collections import Counter
from dataclasses import dataclass, field
from email.headerregistry import HeaderRegistry
from typing import Any, Final

from mailout._canonical import canonical
from mailout._wire.body import text_body
from mailout._wire.headers import (
    Fallback,
    address_field,
    message_id_field,
    type_field,
    unstructured_field,
)
from mailout._wire.ids import boundaries, date, message_id
from mailout._wire.parts import (
    Leaf,
    attachment_cache,
    attachment_plan,
    encodable,
    encode,
    leaf,
    leaf_plan,
    multipart_body,
    token,
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
    EmailMessage,
    EmailMultiAlternatives,
    _header_text,
    local_zone,
    refuse_bcc_header,
)
from mailout.utils import lazy_text
from mailout.wireform import build, check_head, serialize

__all__ = [
    "Context",
    "Prepared",
    "WireStats",
    "attachment_cache",
    "prepare",
    "render",
    "render_fast",
    "render_message",
    "stats",
]

log = logging.getLogger(__name__)

_CHARSETS: Final = frozenset({"utf-8", "us-ascii"})
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
    return _slow(message, smtputf8, reason, recorded=True)


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


def _slow(message: EmailMessage, smtputf8: bool, reason: str, *, recorded: bool = False) -> bytes:
    """The standard library's bytes for a message the fast path handed over, and why."""
    if not recorded:
        stats.record(reason)
    data = serialize(build(message, smtputf8=smtputf8), smtputf8=smtputf8)
    if reason.startswith("refused"):
        log.warning("the fast path refused a message the standard library accepts: %s", reason)
    return data


@dataclass(frozen=True, slots=True)
class Context:
    """The settings rendering reads, read once for a whole batch of messages (at call time)."""

    charset: object  # DEFAULT_CHARSET, for messages whose ``encoding`` is None
    zone: datetime.tzinfo | None  # of the Date field: UTC, or local time (EMAIL_USE_LOCALTIME)

    @classmethod
    def read(cls) -> Context:
        zone = local_zone() if settings.EMAIL_USE_LOCALTIME else datetime.UTC
        return cls(settings.DEFAULT_CHARSET, zone)


@dataclass(slots=True)
class Prepared:
    """A message checked, with its envelope and its header fields written; ``finish()`` writes
    its bytes. Every address was parsed and checked once, for the header fields and the
    envelope alike."""

    sender: str  # addr-specs, as the SMTP envelope carries them
    recipients: tuple[str, ...]
    smtputf8: bool
    data: bytes | None = None  # the whole message when the standard library wrote it
    _plan: _Plan | None = None

    def finish(self, *, boundary_seed: int | None = None) -> bytes:
        """The message's bytes (those of the standard library's path when it took that one)."""
        if self.data is not None:
            return self.data
        assert self._plan is not None
        try:
            data = _finish(self._plan, boundary_seed)
        except Exception as exc:  # unforeseen: prepare() checks what finishing needs
            return _slow(self._plan.message, self.smtputf8, f"refused by the fast path ({exc!r})")
        stats.record(None)
        return data


def prepare(message: EmailMessage, context: Context | None = None) -> Prepared:
    """Check ``message`` whole (raising what ``render()`` would raise) and write its header
    fields; its bodies are encoded by ``Prepared.finish()``.

    A backend prepares a whole batch before sending any of it (bad input anywhere sends
    nothing), then finishes and sends it a little at a time: no second copy of every message
    is held at once, and encoding overlaps with the network.
    """
    stored = _stored_bytes(message)
    if stored is not None:  # read back from the queue: sent as it was stored
        return Prepared(*_envelope_of(message), stored)
    try:
        return _prepare(message, context or Context.read())
    except Fallback as exc:
        reason = exc.reason
    except Exception as exc:  # refused: the slow path decides what to raise
        reason = f"refused by the fast path ({type(exc).__name__})"
    sender, recipients, smtputf8 = _envelope_of(message)
    return Prepared(sender, recipients, smtputf8, _slow(message, smtputf8, reason))


def _envelope_of(message: EmailMessage) -> tuple[str, tuple[str, ...], bool]:
    """The envelope the standard library's path sends with, in the order the backends always
    checked: every address under its own field name first (``needs_smtputf8``)."""
    smtputf8 = message.needs_smtputf8()
    sender = parse_address(message.from_email, field="from_email").addr_spec
    recipients = tuple(parse_address(r, field="recipients").addr_spec for r in message.recipients())
    return sender, recipients, smtputf8


def check(message: EmailMessage) -> None:
    """Raise what ``render()`` would raise for bad input, without building the body."""
    prepare(message)


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


def _address_list(values: object, field: str) -> list[Address]:
    if type(values) is list and not values:
        return []  # (Cc, Bcc, Reply-To: mostly none)
    if not isinstance(values, list | tuple):
        return parse_address_list(values, field=field)  # raises the slow path's error
    return [parse_address(value, field=field) for value in values]


@dataclass(slots=True)
class _Plan:
    """What finishing a message needs: its header fields and its checked parts."""

    message: EmailMessage
    fields: list[str]
    charset: str
    body: str
    subtype: str
    alternatives: list[Leaf]
    alternative_subtype: str
    attachments: list[Leaf]
    mixed_subtype: str
    utf8: bool


def _prepare(message: EmailMessage, context: Context, utf8: bool | None = None) -> Prepared:
    """The fast path's checks and header fields; Fallback where it cannot be sure."""
    has_alternatives = _has_alternatives(type(message))
    charset = message.encoding or context.charset
    if not isinstance(charset, str) or charset not in _CHARSETS:
        raise Fallback(f"charset {charset!r}")
    alternatives: list[Leaf] = []
    alternative_subtype = "alternative"
    if has_alternatives:
        alternatives_of: Any = message
        alternatives = [
            leaf_plan(content, mimetype, charset, "alternative", encoding=charset)
            for content, mimetype in alternatives_of.alternatives
        ]
        if alternatives:
            alternative_subtype = token(
                getattr(message, "alternative_subtype", "alternative"), "alternative_subtype"
            )
    body = lazy_text(message.body)
    if not isinstance(body, str):
        raise Fallback("body is not a string")
    subtype = token(message.content_subtype, "content_subtype")
    attachments = [attachment_plan(a, charset) for a in message.attachments]
    mixed_subtype = token(message.mixed_subtype, "mixed_subtype") if attachments else "mixed"
    # Every address parsed once, under its field's name, in the order _set_headers checks them.
    extra = _extra_headers(message)
    subject = lazy_text(message.subject)
    if not isinstance(subject, str):
        raise Fallback("subject is not a string")
    check_header_value("subject", subject)
    from_email = lazy_text(message.from_email)
    if not isinstance(from_email, str):
        raise Fallback("from_email is not a string")
    sender = parse_address(from_email, field="from_email")
    to = _address_list(message.to, "to")
    cc = _address_list(message.cc, "cc")
    reply_to = _address_list(message.reply_to, "reply_to")
    bcc = _address_list(message.bcc, "bcc")  # checked: Bcc goes only in the envelope
    for key, (name, _) in extra.items():
        if key in _STRUCTURED:
            raise Fallback(f"{name.lower()} given in headers")
    if type(message).recipients is not EmailMessage.recipients:
        raise Fallback("recipients() overridden")  # the envelope is what it says
    local_parts = [a.local_part for a in (sender, *to, *cc, *bcc, *reply_to)]
    needs_utf8 = not "".join(local_parts).isascii()  # one non-ASCII local part is enough
    if utf8 is None:
        utf8 = needs_utf8
    fields = []
    if "subject" not in extra:
        fields.append(unstructured_field("Subject", subject, utf8))
    fields.append(address_field("From", [sender], utf8))
    for name, found in (("To", to), ("Cc", cc), ("Reply-To", reply_to)):
        if found:
            fields.append(address_field(name, found, utf8))
    fields.append(f"Date: {date(context.zone)}")
    if "message-id" not in extra:
        fields.append(f"Message-ID: {message_id()}")
    for key, (name, value) in extra.items():
        if key == "message-id":
            fields.append(message_id_field(name, value))
        else:
            fields.append(unstructured_field(name, value, utf8))
    plan = _Plan(
        message,
        fields,
        charset,
        encodable(body, charset),
        subtype,
        alternatives,
        alternative_subtype,
        attachments,
        mixed_subtype,
        utf8,
    )
    recipients = tuple(a.addr_spec for a in (*to, *cc, *bcc))
    return Prepared(sender.addr_spec, recipients, needs_utf8, None, plan)


def _extra_headers(message: EmailMessage) -> dict[str, tuple[str, str]]:
    extra: dict[str, tuple[str, str]] = {}
    for name, value in message.extra_headers.items():
        check_header_name(name)
        refuse_bcc_header(name)
        extra[name.lower()] = (name, check_header_value(name, _header_text(value)))
    return extra


def _finish(plan: _Plan, seed: int | None) -> bytes:
    charset = plan.charset
    raw: list[bytes] = []
    alternatives = [encode(leaf, charset, raw) for leaf in plan.alternatives]
    attachments = [encode(leaf, charset, raw) for leaf in plan.attachments]
    payload: list[bytes]
    if not alternatives and not attachments:
        cte, body_bytes = text_body(plan.body, charset)
        payload = [body_bytes]
        top = [
            type_field(f"text/{plan.subtype}", charset),
            f"Content-Transfer-Encoding: {cte}",
            "MIME-Version: 1.0",
            *plan.fields,
        ]
    else:
        # Django 6.1: an empty body next to alternatives or attachments is left out.
        body = (plan.body, plan.subtype, None, None)
        parts = [encode(body, charset, raw)] if plan.body else []
        outer, inner = boundaries(raw, seed)
        if alternatives:
            content_type = type_field(f"multipart/{plan.alternative_subtype}", boundary=inner)
            payload = multipart_body([*parts, *alternatives], inner)
            parts = [(leaf([content_type], b""), *payload)]
        if attachments:
            content_type = type_field(f"multipart/{plan.mixed_subtype}", boundary=outer)
            payload = multipart_body([*parts, *attachments], outer)
        top = ["MIME-Version: 1.0", content_type, *plan.fields]
    head = ("\r\n".join(top) + "\r\n\r\n").encode("utf-8" if plan.utf8 else "ascii")
    check_head(head, len(top))
    # Every body above is CRLF lines by construction, so the whole message is in SMTP's
    # canonical form: the client may send it without scanning it again.
    return canonical(b"".join([head, *payload]))


def _render(message: EmailMessage, utf8: bool, seed: int | None) -> bytes:
    prepared = _prepare(message, Context.read(), utf8)
    assert prepared._plan is not None
    return _finish(prepared._plan, seed)
