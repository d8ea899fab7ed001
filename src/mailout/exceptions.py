"""Every error mailout raises, in one tree.

    MailoutError
    ├── BadHeaderError            (ValueError)   CR, LF or NUL in a header value or name
    ├── InvalidAddressError       (ValueError)   an address that does not parse or encode
    ├── InvalidMessageError       (ValueError)   a message field with a bad value
    ├── MessageTypeError          (TypeError)    a message field of the wrong type
    ├── ConflictingArgumentsError (TypeError)    using= with connection=, fail_silently= …
    ├── AttachmentNotFoundError   (FileNotFoundError)  attach_file() of a missing file
    ├── ImproperlyConfigured      (ValueError, and Django's ImproperlyConfigured when installed)
    │                                            a setting or backend option with a bad value
    │   └── InvalidMailer                        a MAILERS entry that cannot be built
    │       └── MailerDoesNotExist (KeyError)    mailers["alias"] for an alias not in MAILERS
    ├── QueueError                               the durable queue (mailout.queue)
    │   ├── StorageError                         the queue's store failed; names the file or URL
    │   │   └── SchemaVersionError               a store written by a newer (or older) mailout
    │   └── MessageNotFound       (KeyError)     no queued message with that id
    └── SMTPError                 (smtplib.SMTPException, so Django-era handlers still catch it)
        ├── SMTPConnectError      (ConnectionError)  could not connect, or the link dropped
        │   └── ServerDisconnected                   the server closed the connection
        ├── SMTPTimeoutError      (TimeoutError)     connect, reply or message timeout
        ├── DeliveryUnknownError                     content sent, final reply lost: never resent
        ├── SMTPProtocolError                        a reply that breaks RFC 5321
        ├── SMTPSecurityError                        TLS or AUTH could not be done safely
        │   ├── StartTLSNotOfferedError              EMAIL_USE_TLS but no STARTTLS: never downgrade
        │   └── SMTPTLSError      (ssl.SSLError)     the TLS handshake or a certificate failed
        ├── SMTPUTF8NotSupportedError                a non-ASCII address, a server without SMTPUTF8
        └── ReplyError                               the server refused a command; carries .reply
            ├── SenderRefusedError                   MAIL FROM refused
            ├── RecipientsRefusedError               every RCPT TO refused; .refused per address
            ├── DataRefusedError                     DATA, BDAT or the message content refused
            └── AuthenticationError                  AUTH refused

No message, repr or ``args`` of any of these ever holds a password or an AUTH line.

mailout.django (which may import Django, unlike this module) raises two of these as classes that
are Django's too: ``mailout.django.serialize.BadHeaderError`` (also Django 5.2's
``django.core.mail.BadHeaderError``) and ``mailout.django.backends.InvalidMailer`` (also Django
6.1's ``django.core.mail.InvalidMailer``), so a project's own ``except`` clauses catch them.
"""

from __future__ import annotations

import importlib.util
import smtplib
import ssl
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mailout.smtp._protocol.reply import Reply

__all__ = [
    "AttachmentNotFoundError",
    "AuthenticationError",
    "BadHeaderError",
    "ConflictingArgumentsError",
    "DataRefusedError",
    "DeliveryUnknownError",
    "ImproperlyConfigured",
    "InvalidAddressError",
    "InvalidMailer",
    "InvalidMessageError",
    "MailerDoesNotExist",
    "MailoutError",
    "MessageNotFound",
    "MessageTypeError",
    "QueueError",
    "RecipientsRefusedError",
    "ReplyError",
    "SMTPConnectError",
    "SMTPError",
    "SMTPProtocolError",
    "SMTPSecurityError",
    "SMTPTLSError",
    "SMTPTimeoutError",
    "SMTPUTF8NotSupportedError",
    "SchemaVersionError",
    "SenderRefusedError",
    "ServerDisconnected",
    "StartTLSNotOfferedError",
    "StorageError",
]


class MailoutError(Exception):
    """Root of every error mailout raises."""


class BadHeaderError(MailoutError, ValueError):
    """A header name or value holds CR, LF or NUL: sending it would allow header injection."""


class InvalidAddressError(MailoutError, ValueError):
    """An email address that does not parse, or whose domain cannot be encoded."""


class InvalidMessageError(MailoutError, ValueError):
    """A message field holds a value that cannot be sent (for example an empty recipient)."""


class MessageTypeError(MailoutError, TypeError):
    """A message field of the wrong type (for example ``to="a@example.com"`` instead of a list)."""


class AttachmentNotFoundError(MailoutError, FileNotFoundError):
    """``attach_file()`` was given a path that does not exist."""


def _django_bases() -> tuple[type[Exception], ...]:
    """Django's ImproperlyConfigured, when Django is installed: a Django project's code that
    catches ``django.core.exceptions.ImproperlyConfigured`` then catches mailout's too."""
    if importlib.util.find_spec("django") is None:
        return ()
    try:
        from django.core.exceptions import (  # type: ignore[import-untyped]
            ImproperlyConfigured as DjangoImproperlyConfigured,
        )
    except Exception:  # a broken or partial Django install: mailout works without it
        return ()
    return (DjangoImproperlyConfigured,)


class ImproperlyConfigured(MailoutError, ValueError, *_django_bases()):  # type: ignore[misc]
    """A setting or backend option has a value mailout cannot use.

    Also a ``ValueError``, and, when Django is installed, Django's ``ImproperlyConfigured``.
    """


class ConflictingArgumentsError(MailoutError, TypeError):
    """Arguments that exclude each other, such as ``using=`` with ``connection=``."""


class InvalidMailer(ImproperlyConfigured):
    """A ``MAILERS`` entry that cannot be turned into a backend.

    With ``alias``, the message starts with ``MAILERS['alias']:``, as Django's does.
    """

    def __init__(self, message: str, *, alias: str | None = None) -> None:
        if alias is not None:
            message = f"MAILERS[{alias!r}]: {message}"
        super().__init__(message)

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.args[0],))


class MailerDoesNotExist(InvalidMailer, KeyError):
    """``mailers[alias]`` or ``using=alias`` named an alias that ``MAILERS`` does not define.

    Raised for nothing else (Django's rule), so code may catch it to mean "not configured".
    """

    def __init__(self, *, alias: str, known: Iterable[str] = ()) -> None:
        names = ", ".join(repr(name) for name in known)
        defined = f"MAILERS defines {names}" if names else "MAILERS defines no mailers"
        super().__init__(f"The mailer '{alias}' is not configured. {defined}.")
        self.alias = alias

    def __str__(self) -> str:  # KeyError would repr() the message and add quotes
        return str(self.args[0]) if self.args else ""

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (type(self), self.args, vars(self)))


def _rebuild(cls: type[Exception], args: tuple[object, ...], state: dict[str, object]) -> Exception:
    error = Exception.__new__(cls)
    error.args = args
    vars(error).update(state)
    return error


class QueueError(MailoutError):
    """Root of the errors of the durable queue (``mailout.queue``)."""


class StorageError(QueueError):
    """The queue's store could not do what was asked; the message names the file or URL.

    Raised instead of the database driver's own error (disk full, a read-only or corrupt file,
    a lock held too long), so that nothing is reported as stored or sent when it was not.
    """


class SchemaVersionError(StorageError):
    """The store was written by a mailout with another schema version than this one knows."""


class MessageNotFound(QueueError, KeyError):
    """No message in the queue has that id."""

    def __str__(self) -> str:  # KeyError would repr() the message and add quotes
        return str(self.args[0]) if self.args else ""


class SMTPError(MailoutError, smtplib.SMTPException):
    """Root of the errors met while talking SMTP.

    It subclasses ``smtplib.SMTPException`` because the reference text promises that exception,
    so code written for Django's mail API keeps catching what mailout raises.
    """

    def __str__(self) -> str:  # OSError formats two-argument errors as "[Errno …]"
        return str(self.args[0]) if self.args else ""


class SMTPConnectError(SMTPError, ConnectionError):
    """Could not connect to the server, or the connection was lost."""


class ServerDisconnected(SMTPConnectError):
    """The server closed the connection."""


class SMTPTimeoutError(SMTPError, TimeoutError):
    """The server did not answer in time."""


class DeliveryUnknownError(SMTPError):
    """The message was sent in full, but its final reply never came: it may have been delivered.

    RFC 5321 §4.5.3.2.6 warns that giving up on the end-of-data reply risks duplicates, so a
    message in this state is never resent automatically; it counts as not sent. Its
    ``__cause__`` is what cut the reply off (a timeout, a dropped connection, a protocol error).
    """


class SMTPProtocolError(SMTPError):
    """The server sent something that is not a valid SMTP reply."""


class SMTPSecurityError(SMTPError):
    """TLS or authentication could not be done safely, so mailout refused to go on."""


class StartTLSNotOfferedError(SMTPSecurityError):
    """STARTTLS was required but the server does not offer it (never silently downgrade)."""


class SMTPTLSError(SMTPSecurityError, ssl.SSLError):
    """TLS could not be set up: the handshake failed or the certificate did not verify.

    Also an ``ssl.SSLError``, which is what Django's smtp backend lets through.
    """


class SMTPUTF8NotSupportedError(SMTPError):
    """A message needs SMTPUTF8 (a non-ASCII address) and the server does not offer it."""


class ReplyError(SMTPError):
    """The server refused a command. ``reply`` holds its answer; ``is_transient`` says retry."""

    def __init__(self, reply: Reply, /, message: str | None = None) -> None:
        super().__init__(message or f"{reply.command or 'command'} refused: {reply}")
        self.reply = reply

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.reply, self.args[0]))

    @property
    def code(self) -> int:
        return self.reply.code

    @property
    def is_transient(self) -> bool:  # RFC 5321 §4.2.1: 4yz is a transient negative reply
        return 400 <= self.reply.code < 500


class SenderRefusedError(ReplyError):
    """The server refused the envelope sender (MAIL FROM)."""


class RecipientsRefusedError(ReplyError):
    """The server refused every recipient; ``refused`` maps each address to its reply."""

    def __init__(
        self,
        reply: Reply,
        /,
        message: str | None = None,
        refused: Mapping[str, Reply] | None = None,
    ) -> None:
        super().__init__(reply, message or f"all recipients refused: {reply}")
        self.refused: dict[str, Reply] = dict(refused or {})

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.reply, self.args[0], self.refused))


class DataRefusedError(ReplyError):
    """The server refused DATA, BDAT or the message content."""


class AuthenticationError(ReplyError):
    """The server refused the credentials (the credentials themselves are never included)."""
