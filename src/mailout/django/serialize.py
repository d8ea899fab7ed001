"""Django's message objects on the wire: mailout's fast serialiser where it can be sure, Django's
own serialisation where it cannot, decided per message.

A Django ``EmailMessage`` or ``EmailMultiAlternatives`` whose class builds its message the way
Django's does is read attribute by attribute (subject, body, from_email, to, cc, bcc, reply_to,
extra_headers, attachments, alternatives, encoding and the subtypes) into a mailout message
holding the same content, which ``mailout.wire``'s fast path renders. Django's own
serialisation (its ``message()``, written as Django's smtp backend writes it) is used instead,
for that message only, when:

* the class overrides ``message()`` or another step of building it: the override is what is
  sent (``message(policy=email.policy.SMTP)`` where it takes a policy, as Django 6's smtp
  backend calls it, else ``message()`` written with CRLF line ends, as Django 5.2's does);
* it is neither a Django nor a mailout message (any object with ``message()`` and
  ``recipients()``, ``from_email`` and the recipient lists);
* it holds something whose form the installed Django decides its own way: a MIME part in
  ``attachments``; ``text/*`` content given as bytes; non-ASCII text for a non-text type; an
  extra header value that is not a string; ``mixed_subtype``/``alternative_subtype`` set where
  Django 6.1 refuses them; with Django 5.2 (the ``email.mime`` classes) also an attachment
  without a file name, which 5.2 writes without ``Content-Disposition``, and a text part inside
  a multipart that does not end with a line break, which 5.2 sends without one, and an empty
  body (5.2 sends no line at all for it);
* mailout's fast path falls back or refuses (``mailout.wire``'s docstring lists when): then
  Django's ``message()`` decides, and raises Django's own exception for bad input.

What Django's path writes is checked as mailout checks its own output (CRLF only, no line over
998 octets, no header line the message does not hold, no NUL in the header block); a failure
raises :class:`BadHeaderError`, which is also Django 5.2's ``BadHeaderError``.

mailout's own messages (from ``manage.py mailout send`` or ``mailout.send_mail`` in the same
project) go through ``mailout.wire.render`` as with mailout's smtp backend.
"""

from __future__ import annotations

import copy
import email.policy
import inspect
from email.generator import BytesGenerator
from email.message import Message
from io import BytesIO
from typing import Any, Final

from django.core.mail import message as django_message  # type: ignore[import-untyped]

from mailout import wire
from mailout.address import parse_address
from mailout.backends.smtp import envelope_of
from mailout.django.redirect import Redirect
from mailout.exceptions import BadHeaderError as MailoutBadHeaderError
from mailout.message import EmailAlternative, EmailAttachment, EmailMessage, EmailMultiAlternatives
from mailout.smtp import Envelope
from mailout.utils import lazy_text
from mailout.wireform import _check_wire_form, _takes_policy

__all__ = ["LEGACY", "BadHeaderError", "check", "envelope", "render"]

DjangoEmailMessage: Final[Any] = django_message.EmailMessage
DjangoEmailMultiAlternatives: Final[Any] = django_message.EmailMultiAlternatives
#: Django 5.2 and older build messages with the email.mime classes (Django 6 with the modern API).
LEGACY: Final = hasattr(DjangoEmailMessage, "_create_message")


def _django_bad_header() -> tuple[type[Exception], ...]:
    django_error = getattr(django_message, "BadHeaderError", ValueError)
    return () if django_error is ValueError else (django_error,)


class BadHeaderError(MailoutBadHeaderError, *_django_bad_header()):  # type: ignore[misc]
    """mailout's BadHeaderError (a ValueError), and under Django 5.2 Django's BadHeaderError too,
    so that a project's ``except BadHeaderError`` catches what mailout refuses."""


# -- which messages the fast path may render -------------------------------------------------

# Methods of Django's classes that do not take part in building the message: overriding them
# changes what the message holds (read from its attributes), not how it is written.
_NOT_BUILDING: Final = frozenset(
    {
        "__init__",
        "__repr__",
        "send",
        "attach",
        "attach_file",
        "attach_alternative",
        "recipients",
        "body_contains",
        "get_connection",
    }
)


def _building_steps(cls: type) -> dict[str, object]:
    return {
        name: value
        for name, value in vars(cls).items()
        if inspect.isfunction(value) and name not in _NOT_BUILDING
    }


_STEPS: Final = _building_steps(DjangoEmailMessage)
_STEPS_ALTERNATIVES: Final = {**_STEPS, **_building_steps(DjangoEmailMultiAlternatives)}
_kinds: dict[type, str | None] = {}
_KIND_REASON: Final = "message() or a step of building it overridden, or not a Django message"


def _kind(cls: type) -> str | None:
    """``"plain"`` or ``"alternatives"`` for a Django message class the fast path may render,
    None for any other class (it goes through its own ``message()``)."""
    try:
        return _kinds[cls]
    except KeyError:
        pass
    kind: str | None = None
    steps: dict[str, object] = {}
    if issubclass(cls, DjangoEmailMultiAlternatives):
        kind, steps = "alternatives", _STEPS_ALTERNATIVES
    elif issubclass(cls, DjangoEmailMessage):
        kind, steps = "plain", _STEPS
    if any(getattr(cls, name, None) is not step for name, step in steps.items()):
        kind = None  # message() or a step of it overridden: the override is what is sent
    _kinds[cls] = kind
    return kind


def _plain_leaf(content: object, mimetype: object) -> bool:
    """Content whose wire form every supported Django writes as mailout does."""
    if not isinstance(mimetype, str):
        return False
    maintype = mimetype.partition("/")[0]
    if maintype == "text":
        return isinstance(content, str)  # bytes: Django 5.2 and 6.1 differ on decoding them
    if maintype.lower() == "text":
        return False  # "TEXT/plain": Django compares case-sensitively, mailout does not
    # Django 5.2 encodes non-ASCII text for a non-text type as raw-unicode-escape.
    return isinstance(content, bytes) or (isinstance(content, str) and content.isascii())


def _ends_a_line(text: object) -> bool:
    return isinstance(text, str) and text.endswith(("\n", "\r"))


_MISSING: Final = object()
# The subtype attributes the installed Django still honours (6.1 refuses both when set).
_DJANGO_SUBTYPES: Final = frozenset(
    name
    for name in ("mixed_subtype", "alternative_subtype")
    if hasattr(DjangoEmailMultiAlternatives, name)
)


def _subtype(message: Any, name: str, default: str, used: bool) -> object:
    """``mixed_subtype``/``alternative_subtype``, or _MISSING where Django would refuse it (6.1
    raises AttributeError when the attribute exists and the part it names is built)."""
    value = getattr(message, name, _MISSING)
    if value is _MISSING:
        return default
    if used and name not in _DJANGO_SUBTYPES:
        return _MISSING
    return value


def _shadow(message: Any, kind: str, redirect: Redirect | None) -> EmailMessage | str:
    """A mailout message with the content of Django message ``message``, or why not."""
    attachments = message.attachments
    if not isinstance(attachments, list | tuple):
        return "attachments is not a list"
    copied_attachments = []
    for attachment in attachments:
        if not isinstance(attachment, tuple) or len(attachment) != 3:
            return "a MIME part in attachments"  # Django attaches it its own way
        filename, content, mimetype = attachment
        if not _plain_leaf(content, mimetype):
            return f"attachment content for {mimetype!r:.40} that Django encodes its own way"
        if LEGACY and not filename:
            return "an attachment without a file name (Django 5.2)"
        copied_attachments.append(EmailAttachment(filename, content, mimetype))
    extra = message.extra_headers
    if not isinstance(extra, dict) or not all(
        isinstance(lazy_text(value), str) for value in extra.values()
    ):
        return "extra_headers is not a dict of strings"
    mixed = _subtype(message, "mixed_subtype", "mixed", bool(attachments))
    if mixed is _MISSING:
        return "mixed_subtype set (Django 6.1 refuses it)"
    if LEGACY:
        # Django 5.2 writes a text part inside a multipart as given, where mailout (as the
        # standard library's set_content, and Django 6) ends it with a line break.
        multipart = bool(attachments) or bool(getattr(message, "alternatives", None))
        texts: list[object] = [c for _, c, m in copied_attachments if m.startswith("text/")]
        body = lazy_text(message.body)
        if multipart and body:
            texts.append(body)
        if not all(_ends_a_line(text) for text in texts):
            return "a text part without a final line break (Django 5.2)"
        if not multipart and not body:
            return "an empty body (Django 5.2 sends no line break for it)"
    shadow: EmailMessage
    if kind == "alternatives":
        alternatives = message.alternatives
        if not isinstance(alternatives, list | tuple):
            return "alternatives is not a list"
        copied_alternatives = []
        for alternative in alternatives:
            if not isinstance(alternative, tuple) or len(alternative) != 2:
                return "an alternative that is not (content, mimetype)"
            if not _plain_leaf(*alternative):
                return "alternative content that Django encodes its own way"
            copied_alternatives.append(EmailAlternative(*alternative))
        if LEGACY and not all(_ends_a_line(c) for c, m in alternatives if m.startswith("text/")):
            return "a text part without a final line break (Django 5.2)"
        subtype = _subtype(message, "alternative_subtype", "alternative", bool(alternatives))
        if subtype is _MISSING:
            return "alternative_subtype set (Django 6.1 refuses it)"
        with_alternatives = object.__new__(EmailMultiAlternatives)
        with_alternatives.alternatives = copied_alternatives
        with_alternatives.alternative_subtype = subtype  # type: ignore[assignment]
        shadow = with_alternatives
    else:
        shadow = object.__new__(EmailMessage)
    shadow.subject = message.subject
    shadow.body = message.body
    shadow.from_email = message.from_email
    shadow.to = message.to
    shadow.cc = message.cc
    shadow.bcc = message.bcc
    shadow.reply_to = message.reply_to
    shadow.attachments = copied_attachments
    shadow.extra_headers = extra
    shadow.encoding = message.encoding
    shadow.content_subtype = message.content_subtype
    shadow.mixed_subtype = mixed  # type: ignore[assignment]
    shadow.connection = None
    if redirect is not None:
        _redirect_fields(shadow, message, redirect)
    return shadow


def _redirect_fields(target: EmailMessage, original: Any, redirect: Redirect) -> None:
    target.extra_headers = redirect.headers(target.extra_headers, original)
    target.to = list(redirect.recipients)
    target.cc = []
    target.bcc = []


# -- the three steps a backend takes ---------------------------------------------------------


def envelope(message: Any) -> Envelope:
    """The SMTP envelope of any message: ``from_email`` and ``recipients()`` as addr-specs.

    SMTPUTF8 is asked for when an address of the message has a non-ASCII local part
    (mailout sends it, where Django's smtp backend refuses or mangles it).
    """
    if isinstance(message, EmailMessage):
        return envelope_of(message)
    sender = parse_address(message.from_email, field="from_email")
    recipients = [parse_address(r, field="recipients") for r in message.recipients()]
    reply_to = [parse_address(r, field="reply_to") for r in getattr(message, "reply_to", ())]
    smtputf8 = any(a.needs_smtputf8 for a in (sender, *recipients, *reply_to))
    return Envelope(sender.addr_spec, tuple(a.addr_spec for a in recipients), smtputf8=smtputf8)


def render(message: Any, *, smtputf8: bool = False, redirect: Redirect | None = None) -> bytes:
    """The bytes of ``message`` (Django's, mailout's or any with ``message()``), CRLF line ends.

    ``redirect`` rewrites the recipient headers (see mailout.django.redirect).
    """
    if isinstance(message, EmailMessage):
        if redirect is not None:
            redirected = copy.copy(message)
            _redirect_fields(redirected, message, redirect)
            message = redirected
        return wire.render(message, smtputf8=smtputf8)
    kind = _kind(type(message))
    shadow = _shadow(message, kind, redirect) if kind is not None else _KIND_REASON
    if isinstance(shadow, str):
        wire.stats.record(f"Django's serialisation: {shadow}")
    else:
        data = wire.render_fast(shadow, smtputf8=smtputf8)  # counts its own decision
        if data is not None:
            return data
    return _django_bytes(message, smtputf8, redirect)


def check(message: Any) -> None:
    """Raise what ``render()`` would raise for ``message``, building its body only when the
    fast path cannot check it."""
    if isinstance(message, EmailMessage):
        wire.check(message)
        return
    kind = _kind(type(message))
    shadow = _shadow(message, kind, None) if kind is not None else _KIND_REASON
    if not isinstance(shadow, str):
        try:
            wire.check(shadow)
        except Exception:  # Django's message() below decides what to raise
            _django_message(message, smtputf8=False)
        return
    _django_message(message, smtputf8=False)


# -- Django's own serialisation --------------------------------------------------------------


def _django_message(message: Any, *, smtputf8: bool) -> Message:
    """``message.message()`` as the installed Django's smtp backend calls it: Django 6 with
    ``policy=email.policy.SMTP`` (``message()`` for an override that takes no policy, where
    Django 6 would fail), Django 5.2 with no argument."""
    if not LEGACY and _takes_policy(type(message)):
        policy = email.policy.SMTPUTF8 if smtputf8 else email.policy.SMTP
        built: Message = message.message(policy=policy)
    else:
        built = message.message()  # Django 5.2's signature (and overrides written for it)
    return built


def _django_bytes(message: Any, smtputf8: bool, redirect: Redirect | None) -> bytes:
    msg = _django_message(message, smtputf8=smtputf8)
    if redirect is not None:
        originals = redirect.original_headers(message)
        for name in ("To", "Cc", *originals):
            del msg[name]
        msg["To"] = ", ".join(redirect.recipients)
        for name, value in originals.items():
            msg[name] = value
    out = BytesIO()
    # What Django's smtp backends write: 5.2's as_bytes(linesep="\r\n"), 6's as_bytes() of a
    # message built with policy.SMTP; both keep lines starting "From " as they are.
    BytesGenerator(out, mangle_from_=False).flatten(msg, unixfrom=False, linesep="\r\n")
    data = out.getvalue()
    try:
        _check_wire_form(data, [name.lower() for name in msg])
    except MailoutBadHeaderError as exc:
        raise BadHeaderError(str(exc)) from None
    return data
