"""EmailMessage and EmailMultiAlternatives: what a message holds, and its standard-library form.

``message()`` builds a ``email.message.EmailMessage`` (the modern stdlib API). Every header
value, name, address and attachment file name is checked on the way in, so no input can add a
header line or a recipient. Turning the result into bytes is the backend's choice
(``mailout.wire``, ``mailout.wireform``): only the backend knows if the receiver speaks SMTPUTF8.
This module imports no backend: a message looks its backend up when it is sent.
"""

from __future__ import annotations

import datetime
import email.policy
import email.utils
import mimetypes
import os
import zoneinfo
from collections.abc import Iterable, Mapping, Sequence
from email.message import EmailMessage as _StdMessage
from email.message import Message, MIMEPart
from email.utils import make_msgid
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from mailout.address import (
    Address,
    check_header_name,
    check_header_value,
    parse_address,
    parse_address_list,
)
from mailout.conf import settings
from mailout.exceptions import (
    AttachmentNotFoundError,
    InvalidMessageError,
    MailoutError,
    MessageTypeError,
)
from mailout.utils import DNS_NAME, lazy_text

if TYPE_CHECKING:
    from mailout.backends.base import BaseEmailBackend

# Django's pre-6.1 helpers, importable from here as from django.core.mail.message (with the
# stdlib class SafeMIMEText builds on, which Django's module also exposes).
from email.mime.text import MIMEText  # noqa: F401

from mailout._compat import (
    SafeMIMEMultipart,
    SafeMIMEText,
    forbid_multi_line_headers,
    sanitize_address,
)

__all__ = [
    "DEFAULT_ATTACHMENT_MIME_TYPE",
    "EmailAlternative",
    "EmailAttachment",
    "EmailMessage",
    "EmailMultiAlternatives",
    "SafeMIMEMultipart",
    "SafeMIMEText",
    "forbid_multi_line_headers",
    "sanitize_address",
]

DEFAULT_ATTACHMENT_MIME_TYPE = "application/octet-stream"
_ADDRESS_HEADERS = {"from": "From", "to": "To", "cc": "Cc", "reply-to": "Reply-To"}


class EmailAttachment(NamedTuple):
    filename: str | None
    content: str | bytes | Message | EmailMessage
    mimetype: str


class EmailAlternative(NamedTuple):
    content: str | bytes
    mimetype: str


def _address_list(value: object, field: str) -> list[str]:
    """Check the type of a recipient field at construction time, as Django does."""
    if value is None:
        return []
    if isinstance(value, str):
        raise MessageTypeError(f'"{field}" argument must be a list or tuple, not a string')
    if not isinstance(value, list | tuple):
        raise MessageTypeError(f'"{field}" argument must be a list or tuple')
    return list(value)


class EmailMessage:
    """A message, Django-style. All arguments are optional and can be changed until ``send()``."""

    content_subtype = "plain"
    mixed_subtype = "mixed"
    encoding: str | None = None  # None means the DEFAULT_CHARSET setting

    def __init__(
        self,
        subject: str = "",
        body: str = "",
        from_email: str | None = None,
        to: Sequence[str] | None = None,
        bcc: Sequence[str] | None = None,
        connection: BaseEmailBackend | None = None,
        attachments: Iterable[Any] | None = None,
        headers: Mapping[str, Any] | None = None,
        cc: Sequence[str] | None = None,
        reply_to: Sequence[str] | None = None,
    ) -> None:
        self.to = _address_list(to, "to")
        self.cc = _address_list(cc, "cc")
        self.bcc = _address_list(bcc, "bcc")
        self.reply_to = _address_list(reply_to, "reply_to")
        self.from_email = from_email or settings.DEFAULT_FROM_EMAIL
        self.subject = subject
        self.body = body or ""
        self.attachments: list[Any] = []
        for attachment in attachments or ():
            if isinstance(attachment, Message):
                self.attach(attachment)
            else:
                self.attach(*attachment)
        if headers is not None and not isinstance(headers, Mapping):
            raise MessageTypeError('"headers" argument must be a mapping of name to value')
        self.extra_headers: dict[str, Any] = dict(headers or {})
        self.connection = connection

    def __repr__(self) -> str:
        return f"<{type(self).__name__} subject={self.subject!r} to={self.to!r}>"

    # -- sending ---------------------------------------------------------------------------

    def get_connection(self, fail_silently: bool = False) -> BaseEmailBackend:
        """The backend ``send()`` uses without ``using=``: ``connection``, else a new default one.

        A new one each time: caching it on the message would tie later sends to it (Django
        6.1 dropped this undocumented method; a subclass's override is still honoured).
        """
        from mailout.mailers import get_connection  # backends are looked up when sending

        if self.connection is not None:
            return self.connection
        return get_connection(fail_silently=fail_silently)

    def _backend_for(self, fail_silently: bool, using: str | None) -> BaseEmailBackend:
        from mailout.mailers import check_arguments, mailers

        check_arguments(using=using, connection=self.connection, fail_silently=fail_silently)
        if using is not None:
            return mailers[using]
        return self.get_connection(fail_silently)

    def send(self, fail_silently: bool = False, *, using: str | None = None) -> int:
        """Send this message; return 1 if it was sent, 0 if not (or if it has no recipients).

        ``using`` names a ``MAILERS`` alias; without it the message goes through its
        ``connection``, else the default backend (``fail_silently`` applies to that one only).
        """
        if not self.recipients():
            return 0
        return self._backend_for(fail_silently, using).send_messages([self])

    async def asend(self, fail_silently: bool = False, *, using: str | None = None) -> int:
        """Send this message without blocking the event loop."""
        if not self.recipients():
            return 0
        return await self._backend_for(fail_silently, using).asend_messages([self])

    def recipients(self) -> list[str]:
        """Every envelope recipient: to, cc and bcc (Bcc never appears in the headers)."""
        to, cc, bcc = self.to, self.cc, self.bcc
        if type(to) is list and type(cc) is list and type(bcc) is list:
            # The usual: lists, as __init__ makes them (a user may have put anything there
            # since, which the general path below checks). Called for every message sent.
            return [addr for addr in (*to, *cc, *bcc) if addr]
        fields = (_address_list(getattr(self, f), f) for f in ("to", "cc", "bcc"))
        return [addr for field in fields for addr in field if addr]

    # -- content ---------------------------------------------------------------------------

    def attach(
        self,
        filename: str | Message | None = None,
        content: str | bytes | Message | EmailMessage | None = None,
        mimetype: str | None = None,
    ) -> None:
        """Attach a MIME part, or filename, content and mimetype (the type guessed if omitted)."""
        if isinstance(filename, Message):
            if content is not None or mimetype is not None:
                raise InvalidMessageError(
                    "attach(): content and mimetype must not be given when a MIMEPart instance "
                    "is provided."
                )
            self.attachments.append(filename)
            return
        if content is None:
            raise InvalidMessageError("attach(): content must be provided.")
        if filename is not None:
            if not isinstance(filename, str):
                raise MessageTypeError("attach(): filename must be a string")
            check_header_value("attachment filename", filename)
        if mimetype is None:
            guessed = mimetypes.guess_type(filename)[0] if filename else None
            mimetype = guessed or DEFAULT_ATTACHMENT_MIME_TYPE
        check_header_value("attachment mimetype", mimetype)
        basetype, _, subtype = mimetype.partition("/")
        if not basetype or not subtype:
            raise InvalidMessageError(f"attach(): mimetype {mimetype!r} is not type/subtype")
        if basetype == "text" and isinstance(content, bytes):
            try:
                content = content.decode()
            except UnicodeDecodeError:
                # Not text after all: send the exact bytes rather than a mangled decoding.
                mimetype = DEFAULT_ATTACHMENT_MIME_TYPE
        elif not isinstance(content, str | bytes | Message | EmailMessage):
            raise MessageTypeError(f"attach(): content must be str or bytes, not {content!r:.40}")
        self.attachments.append(EmailAttachment(filename, content, mimetype))

    def attach_file(self, path: str | os.PathLike[str], mimetype: str | None = None) -> None:
        """Attach the file at ``path``; its MIME type is guessed from its name if omitted."""
        file = Path(path)
        try:
            content = file.read_bytes()
        except FileNotFoundError:
            raise AttachmentNotFoundError(f"attach_file(): no such file: {str(file)!r}") from None
        except IsADirectoryError:
            raise InvalidMessageError(f"attach_file(): {str(file)!r} is a directory") from None
        self.attach(file.name, content, mimetype)

    # -- the standard-library message ------------------------------------------------------

    def message(
        self, *, policy: email.policy.EmailPolicy[Any] = email.policy.default
    ) -> _StdMessage:
        """Build the ``email.message.EmailMessage`` to send (checked: injection is impossible)."""
        msg = _StdMessage(policy=policy)
        self._set_content(msg)
        self._set_headers(msg)
        _check_decoded_headers(msg)
        return msg

    def _charset(self) -> str:
        return self.encoding or settings.DEFAULT_CHARSET

    def _fill_body(self, part: MIMEPart) -> None:
        body = lazy_text(self.body)
        if not isinstance(body, str):
            raise MessageTypeError(f"body must be a string, not {type(body).__name__}")
        part.set_content(body, subtype=self.content_subtype, charset=self._charset())

    def _alternative_parts(self, policy: email.policy.EmailPolicy) -> list[MIMEPart]:
        return []

    def _set_content(self, msg: _StdMessage) -> None:
        policy = cast(email.policy.EmailPolicy, msg.policy)
        alternatives = self._alternative_parts(policy)
        if not alternatives and not self.attachments:
            # Filled in place: copying a non-multipart payload would decode its 8-bit text.
            self._fill_body(msg)
            return
        parts: list[Any] = []
        if lazy_text(self.body):
            # Django 6.1: an empty body next to alternatives or attachments is left out, so a
            # reader that prefers text/plain does not show an empty part.
            body = MIMEPart(policy=policy)
            self._fill_body(body)
            parts.append(body)
        if alternatives:
            subtype = getattr(self, "alternative_subtype", "alternative")
            parts = [_multipart(policy, subtype, [*parts, *alternatives])]
        if self.attachments:
            attachments = [self._attachment_part(a, policy) for a in self.attachments]
            parts = [_multipart(policy, self.mixed_subtype, [*parts, *attachments])]
        (top,) = parts
        msg["MIME-Version"] = "1.0"
        msg["Content-Type"] = top["Content-Type"]
        msg.set_payload(top.get_payload())  # a list of parts: nothing is re-decoded

    def _attachment_part(self, attachment: Any, policy: email.policy.EmailPolicy) -> Message:
        if isinstance(attachment, Message):
            for name, value in attachment.items():
                check_header_value(f"attachment header {name}", str(value))
            return attachment
        filename, content, mimetype = attachment
        basetype, _, subtype = mimetype.partition("/")
        part = MIMEPart(policy=policy)
        if basetype.lower() == "message":
            if isinstance(content, EmailMessage):
                content = content.message(policy=policy)
            elif isinstance(content, str | bytes):
                content = email.message_from_bytes(
                    content.encode() if isinstance(content, str) else content, policy=policy
                )
            part.set_content(content, subtype=subtype)
        else:
            content, mimetype = leaf_content(content, mimetype, "utf-8", f"attachment {filename!r}")
            _set_leaf(part, content, mimetype, self._charset())
        if filename:
            part.add_header("Content-Disposition", "attachment", filename=filename)
        else:
            part.add_header("Content-Disposition", "attachment")
        return part

    def _header_addresses(self, field: str, values: list[str]) -> list[Address]:
        return parse_address_list(values, field=field)

    def _set_headers(self, msg: _StdMessage) -> None:
        extra = {}
        for name, value in self.extra_headers.items():
            check_header_name(name)
            refuse_bcc_header(name)
            check_header_value(name, _header_text(value))
            extra[name.lower()] = (name, _header_value(name, value))
        subject = lazy_text(self.subject)
        if not isinstance(subject, str):
            raise MessageTypeError(f"subject must be a string, not {type(subject).__name__}")
        msg["Subject"] = check_header_value("subject", subject)
        sender = parse_address(self.from_email, field="from_email")
        fields = {
            "from": [sender],
            "to": self._header_addresses("to", self.to),
            "cc": self._header_addresses("cc", self.cc),
            "reply-to": self._header_addresses("reply_to", self.reply_to),
        }
        parse_address_list(self.bcc, field="bcc")  # checked now: Bcc goes only in the envelope
        for key, header in _ADDRESS_HEADERS.items():
            if key in extra:
                _set_header(msg, header, _address_header(header, _header_text(extra[key][1])))
            elif fields[key]:
                msg[header] = [a.to_stdlib() for a in fields[key]]
        if "date" not in extra:
            msg["Date"] = now()
        if "message-id" not in extra:
            msg["Message-ID"] = make_msgid(domain=DNS_NAME.get_fqdn())
        for key, (name, value) in extra.items():
            if key not in _ADDRESS_HEADERS:
                del msg[name]  # an extra header replaces ours (Subject, Date, Message-ID, …)
                _set_header(msg, name, value)

    def needs_smtputf8(self) -> bool:
        """True when an address has a non-ASCII local part, which only SMTPUTF8 can carry."""
        fields = {
            "from_email": [self.from_email],
            "to": _address_list(self.to, "to"),
            "cc": _address_list(self.cc, "cc"),
            "bcc": _address_list(self.bcc, "bcc"),
            "reply_to": _address_list(self.reply_to, "reply_to"),
        }
        return any(
            parse_address(value, field=name).needs_smtputf8
            for name, values in fields.items()
            for value in values
            if value
        )


def _set_header(msg: Message, name: str, value: Any) -> None:
    """Set a header given by the user; the stdlib's parser errors become one typed error."""
    try:
        msg[name] = value
    except MailoutError:
        raise
    except Exception as exc:  # IndexError, ValueError, … from email._header_value_parser
        raise InvalidMessageError(f"{name}: {value!r:.80} is not a valid header value") from exc


def _check_decoded_headers(msg: Message) -> None:
    """Check every header and parameter of every part *as the generator will write it*.

    The stdlib decodes RFC 2047 words found in the values it is given (``=?utf-8?q?a=0D=0A?=``)
    and writes the decoded text out; a CR or LF hidden that way would start a new header line.
    """
    for part in msg.walk():
        for name, value in part.items():
            check_header_value(name, str(value))
        for key in ("Content-Type", "Content-Disposition"):
            for param, param_value in part.get_params(header=key, failobj=[]):
                text = email.utils.collapse_rfc2231_value(param_value)
                check_header_value(f"{key} parameter {param}", text)


def leaf_content(
    content: object, mimetype: str, encoding: str, what: str
) -> tuple[str | bytes, str]:
    """Django's rule for the content of a leaf part: a text/* type is sent as text (UTF-8 bytes
    decoded; bytes that are not UTF-8 relabelled application/octet-stream, so they arrive
    byte for byte), any other type as bytes (text encoded with ``encoding``), its type kept."""
    if isinstance(content, bytearray | memoryview):
        content = bytes(content)
    if mimetype.partition("/")[0].lower() == "text":
        if isinstance(content, bytes):
            try:
                return content.decode(), mimetype
            except UnicodeDecodeError:
                return content, DEFAULT_ATTACHMENT_MIME_TYPE
        if isinstance(content, str):
            return content, mimetype
    elif isinstance(content, bytes):
        return content, mimetype
    elif isinstance(content, str):
        return content.encode(encoding), mimetype
    raise MessageTypeError(f"{what}: content must be str or bytes, not {type(content).__name__}")


def _set_leaf(part: MIMEPart, content: str | bytes, mimetype: str, charset: str) -> None:
    basetype, _, subtype = mimetype.partition("/")
    if isinstance(content, str):
        part.set_content(content, subtype=subtype, charset=charset)
    else:
        part.set_content(content, basetype, subtype)


def _multipart(policy: email.policy.EmailPolicy, subtype: str, parts: list[Any]) -> MIMEPart:
    container = MIMEPart(policy=policy)
    container.set_type(f"multipart/{subtype}")
    del container["MIME-Version"]  # set_type() adds one; only the top level carries it
    for part in parts:
        container.attach(part)
    return container


def _header_text(value: object) -> str:
    return value if isinstance(value, str) else str(value)


# Fields the standard library formats from a datetime (RFC 5322 §3.3 date-time).
_DATE_FIELDS = frozenset({"date", "resent-date", "orig-date", "expires"})


def _header_value(name: str, value: object) -> object:
    """What goes to the standard library for an extra header: text, or a datetime for a date
    field (which the stdlib formats as RFC 5322 requires; ``str()`` of it would not parse)."""
    if isinstance(value, datetime.datetime) and name.lower() in _DATE_FIELDS:
        return value
    return _header_text(value)


def refuse_bcc_header(name: str) -> None:
    """A Bcc header would show the blind copies to every recipient, and be left out of the
    envelope: refuse it, as Django 6.1 does."""
    if name.lower() == "bcc":
        raise InvalidMessageError(
            'headers: Bcc is not a valid email header. Use the "bcc" argument to specify '
            "blind carbon copy recipients."
        )


def now() -> datetime.datetime:
    """The ``Date`` of a new message: UTC (``+0000``, RFC 5322 §3.3; ``-0000`` would mean "zone
    unknown"), or local time with ``EMAIL_USE_LOCALTIME`` (in ``TIME_ZONE`` when set)."""
    utc = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    if not settings.EMAIL_USE_LOCALTIME:
        return utc
    return utc.astimezone(local_zone())


def local_zone() -> datetime.tzinfo | None:
    """``TIME_ZONE`` (Django's setting, when mailout reads Django's settings) or the machine's."""
    name = settings.TIME_ZONE
    return zoneinfo.ZoneInfo(name) if name else None


def _address_header(header: str, value: str) -> Any:
    """An address header given in ``headers``: checked mailbox by mailbox when it parses."""
    parts = [p for p in value.split(",") if p.strip()]
    try:
        return [parse_address(p.strip(), field=header).to_stdlib() for p in parts]
    except (ValueError, TypeError):
        # Groups ("undisclosed-recipients:;") and quoted commas: the newline check already ran,
        # so the stdlib's own parser may handle the rest.
        return value


class EmailMultiAlternatives(EmailMessage):
    """A message with alternative renderings of its body, such as an HTML version."""

    alternative_subtype = "alternative"

    def __init__(
        self,
        subject: str = "",
        body: str = "",
        from_email: str | None = None,
        to: Sequence[str] | None = None,
        bcc: Sequence[str] | None = None,
        connection: BaseEmailBackend | None = None,
        attachments: Iterable[Any] | None = None,
        headers: Mapping[str, Any] | None = None,
        alternatives: Iterable[tuple[str | bytes, str]] | None = None,
        cc: Sequence[str] | None = None,
        reply_to: Sequence[str] | None = None,
    ) -> None:
        super().__init__(
            subject, body, from_email, to, bcc, connection, attachments, headers, cc, reply_to
        )
        self.alternatives: list[EmailAlternative] = []
        for content, mimetype in alternatives or ():
            self.attach_alternative(content, mimetype)

    def attach_alternative(self, content: str | bytes, mimetype: str) -> None:
        """Add another rendering of the body, e.g. ``attach_alternative(html, "text/html")``."""
        if content is None or mimetype is None:
            raise InvalidMessageError(
                "attach_alternative(): Both content and mimetype must be provided."
            )
        check_header_value("alternative mimetype", mimetype)
        if "/" not in mimetype:
            raise InvalidMessageError(f"attach_alternative(): {mimetype!r} is not type/subtype")
        self.alternatives.append(EmailAlternative(content, mimetype))

    def body_contains(self, text: str) -> bool:
        """True if ``text`` is in the body and in every text/* alternative."""
        if text not in self.body:
            return False
        return all(
            text in content
            for content, mimetype in self.alternatives
            if mimetype.startswith("text/") and isinstance(content, str)
        )

    def _alternative_parts(self, policy: email.policy.EmailPolicy) -> list[MIMEPart]:
        parts = []
        charset = self._charset()
        for content, mimetype in self.alternatives:
            content, mimetype = leaf_content(content, mimetype, charset, "alternative")
            part = MIMEPart(policy=policy)
            _set_leaf(part, content, mimetype, charset)
            parts.append(part)
        return parts
