"""mailout: Django's email API as a standalone library. ``import mailout as mail``.

Sending functions, message classes and backends keep Django's names and behaviour; each sending
function has an ``a``-prefixed coroutine twin (``await mail.asend_mail(...)``).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from mailout.conf import configure, settings
from mailout.exceptions import (
    BadHeaderError,
    ImproperlyConfigured,
    InvalidMailer,
    MailerDoesNotExist,
    MailoutError,
    MessageTypeError,
)
from mailout.mailers import DEFAULT_MAILER_ALIAS, check_arguments, get_connection, mailers
from mailout.message import (
    DEFAULT_ATTACHMENT_MIME_TYPE,
    EmailAlternative,
    EmailAttachment,
    EmailMessage,
    EmailMultiAlternatives,
    SafeMIMEMultipart,
    SafeMIMEText,
    forbid_multi_line_headers,
)
from mailout.utils import DNS_NAME, CachedDnsName

if TYPE_CHECKING:
    from mailout.backends.base import BaseEmailBackend

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_ATTACHMENT_MIME_TYPE",
    "DEFAULT_MAILER_ALIAS",
    "DNS_NAME",
    "BadHeaderError",
    "CachedDnsName",
    "EmailAlternative",
    "EmailAttachment",
    "EmailMessage",
    "EmailMultiAlternatives",
    "ImproperlyConfigured",
    "InvalidMailer",
    "MailerDoesNotExist",
    "MailoutError",
    "SMTPConnection",
    "SafeMIMEMultipart",
    "SafeMIMEText",
    "amail_admins",
    "amail_managers",
    "asend_mail",
    "asend_mass_mail",
    "configure",
    "forbid_multi_line_headers",
    "get_connection",
    "mail_admins",
    "mail_managers",
    "mailers",
    "outbox",
    "send_mail",
    "send_mass_mail",
    "settings",
]

#: Messages sent through the locmem backend, as ``django.core.mail.outbox``.
outbox: list[EmailMessage] = []


def _backend(
    connection: BaseEmailBackend | None,
    using: str | None,
    fail_silently: bool,
    auth_user: str | None = None,
    auth_password: str | None = None,
) -> BaseEmailBackend:
    """The backend of a sending function: refuse conflicting arguments, then look it up."""
    check_arguments(
        using=using,
        connection=connection,
        fail_silently=fail_silently,
        auth_user=auth_user,
        auth_password=auth_password,
    )
    if using is not None:
        return mailers[using]
    if connection is not None:
        return connection
    credentials = {}
    if auth_user is not None:
        credentials["username"] = auth_user
    if auth_password is not None:
        credentials["password"] = auth_password
    return get_connection(fail_silently=fail_silently, **credentials)


def _make_mail(
    subject: str,
    message: str,
    from_email: str | None,
    recipient_list: Sequence[str],
    connection: BaseEmailBackend,
    html_message: str | None,
) -> EmailMultiAlternatives:
    mail = EmailMultiAlternatives(
        subject, message, from_email, recipient_list, connection=connection
    )
    if html_message:
        mail.attach_alternative(html_message, "text/html")
    return mail


def send_mail(
    subject: str,
    message: str,
    from_email: str | None,
    recipient_list: Sequence[str],
    fail_silently: bool = False,
    auth_user: str | None = None,
    auth_password: str | None = None,
    connection: BaseEmailBackend | None = None,
    html_message: str | None = None,
    *,
    using: str | None = None,
) -> int:
    """Send one message to every address in ``recipient_list`` (all in its To header)."""
    backend = _backend(connection, using, fail_silently, auth_user, auth_password)
    return _make_mail(subject, message, from_email, recipient_list, backend, html_message).send()


async def asend_mail(
    subject: str,
    message: str,
    from_email: str | None,
    recipient_list: Sequence[str],
    fail_silently: bool = False,
    auth_user: str | None = None,
    auth_password: str | None = None,
    connection: BaseEmailBackend | None = None,
    html_message: str | None = None,
    *,
    using: str | None = None,
) -> int:
    backend = _backend(connection, using, fail_silently, auth_user, auth_password)
    mail = _make_mail(subject, message, from_email, recipient_list, backend, html_message)
    return await mail.asend()


def _mass_messages(
    datatuple: Iterable[tuple[str, str, str | None, Sequence[str]]], backend: BaseEmailBackend
) -> list[EmailMessage]:
    messages = []
    for index, item in enumerate(datatuple):
        if not isinstance(item, tuple | list) or len(item) != 4:
            raise MessageTypeError(
                f"datatuple[{index}]: expected (subject, message, from_email, recipient_list)"
            )
        subject, body, sender, recipients = item
        messages.append(EmailMessage(subject, body, sender, recipients, connection=backend))
    return messages


def send_mass_mail(
    datatuple: Iterable[tuple[str, str, str | None, Sequence[str]]],
    fail_silently: bool = False,
    auth_user: str | None = None,
    auth_password: str | None = None,
    connection: BaseEmailBackend | None = None,
    *,
    using: str | None = None,
) -> int:
    """Send one message per ``(subject, message, from_email, recipients)``, over one connection."""
    backend = _backend(connection, using, fail_silently, auth_user, auth_password)
    return backend.send_messages(_mass_messages(datatuple, backend))


async def asend_mass_mail(
    datatuple: Iterable[tuple[str, str, str | None, Sequence[str]]],
    fail_silently: bool = False,
    auth_user: str | None = None,
    auth_password: str | None = None,
    connection: BaseEmailBackend | None = None,
    *,
    using: str | None = None,
) -> int:
    backend = _backend(connection, using, fail_silently, auth_user, auth_password)
    return await backend.asend_messages(_mass_messages(datatuple, backend))


def _site_mail(
    setting: str,
    subject: str,
    message: str,
    fail_silently: bool,
    connection: BaseEmailBackend | None,
    html_message: str | None,
    using: str | None,
) -> EmailMultiAlternatives | None:
    check_arguments(using=using, connection=connection, fail_silently=fail_silently)
    recipients = getattr(settings, setting)
    if not recipients:
        return None
    backend = _backend(connection, using, fail_silently)
    return _make_mail(
        f"{settings.EMAIL_SUBJECT_PREFIX}{subject}",
        message,
        settings.SERVER_EMAIL,
        recipients,
        backend,
        html_message,
    )


def mail_admins(
    subject: str,
    message: str,
    fail_silently: bool = False,
    connection: BaseEmailBackend | None = None,
    html_message: str | None = None,
    *,
    using: str | None = None,
) -> int:
    """Send to ``ADMINS`` from ``SERVER_EMAIL``, subject prefixed; nothing if ADMINS is empty."""
    mail = _site_mail("ADMINS", subject, message, fail_silently, connection, html_message, using)
    return mail.send() if mail else 0


def mail_managers(
    subject: str,
    message: str,
    fail_silently: bool = False,
    connection: BaseEmailBackend | None = None,
    html_message: str | None = None,
    *,
    using: str | None = None,
) -> int:
    """Like mail_admins(), to ``MANAGERS``."""
    mail = _site_mail("MANAGERS", subject, message, fail_silently, connection, html_message, using)
    return mail.send() if mail else 0


async def amail_admins(
    subject: str,
    message: str,
    fail_silently: bool = False,
    connection: BaseEmailBackend | None = None,
    html_message: str | None = None,
    *,
    using: str | None = None,
) -> int:
    mail = _site_mail("ADMINS", subject, message, fail_silently, connection, html_message, using)
    return await mail.asend() if mail else 0


async def amail_managers(
    subject: str,
    message: str,
    fail_silently: bool = False,
    connection: BaseEmailBackend | None = None,
    html_message: str | None = None,
    *,
    using: str | None = None,
) -> int:
    mail = _site_mail("MANAGERS", subject, message, fail_silently, connection, html_message, using)
    return await mail.asend() if mail else 0


def __getattr__(name: str) -> Any:
    if name == "SMTPConnection":
        warnings.warn(
            "SMTPConnection is deprecated; use get_connection() instead",
            DeprecationWarning,
            stacklevel=2,
        )
        from mailout.backends.smtp import EmailBackend

        return EmailBackend
    raise AttributeError(f"module 'mailout' has no attribute {name!r}")
