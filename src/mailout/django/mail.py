"""The async twins of Django's sending functions, for Django's own message objects.

``await asend_mail(...)``, ``asend_mass_mail``, ``amail_admins``, ``amail_managers`` take Django's
arguments and build Django's messages as Django's functions do; ``await asend(message)`` is
``message.send()``'s twin. With a backend that has ``asend_messages`` (mailout.django's, and
mailout's own) nothing blocks the event loop: the SMTP exchange runs on mailout's asyncio pool.
Any other backend (Django's, a provider's) runs its ``send_messages`` through asgiref's
``sync_to_async`` (thread-sensitive, as Django runs sync code from async views), so a backend
that uses the database keeps to the thread Django gives database work.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Sequence
from typing import Any

from asgiref.sync import sync_to_async
from django.core import mail as django_mail  # type: ignore[import-untyped]

from mailout import conf
from mailout.django.conf import use_django_settings
from mailout.mailers import check_arguments
from mailout.message import EmailMessage as MailoutMessage

__all__ = [
    "amail_admins",
    "amail_managers",
    "asend",
    "asend_mail",
    "asend_mass_mail",
    "asend_messages",
]


async def asend_messages(connection: Any, messages: Iterable[Any]) -> int:
    """``connection.send_messages(messages)`` without blocking the event loop."""
    batch = list(messages)
    native = getattr(connection, "asend_messages", None)
    if native is not None and inspect.iscoroutinefunction(native):
        return int(await native(batch))
    return int(await sync_to_async(connection.send_messages, thread_sensitive=True)(batch))


def _connection(
    connection: Any = None,
    using: str | None = None,
    fail_silently: bool = False,
    auth_user: str | None = None,
    auth_password: str | None = None,
) -> Any:
    """The backend a sending function uses, as Django's would pick it."""
    check_arguments(
        using=using,
        connection=connection,
        fail_silently=fail_silently,
        auth_user=auth_user,
        auth_password=auth_password,
    )
    mailers = getattr(django_mail, "mailers", None)
    if using is not None:
        if mailers is None:
            raise TypeError("using= names a MAILERS alias, which needs Django 6.1 or later")
        return mailers[using]
    if connection is not None:
        return connection
    options: dict[str, Any] = {}
    if fail_silently:
        options["fail_silently"] = fail_silently
    if auth_user is not None:
        options["username"] = auth_user
    if auth_password is not None:
        options["password"] = auth_password
    if mailers is not None and not options:
        return mailers.default  # Django 6.1: what send_mail() uses without deprecated arguments
    return django_mail.get_connection(**options)


async def asend_mail(
    subject: str,
    message: str,
    from_email: str | None,
    recipient_list: Sequence[str],
    fail_silently: bool = False,
    auth_user: str | None = None,
    auth_password: str | None = None,
    connection: Any = None,
    html_message: str | None = None,
    *,
    using: str | None = None,
) -> int:
    """``django.core.mail.send_mail()``, awaited: one message, every recipient in its To."""
    backend = _connection(connection, using, fail_silently, auth_user, auth_password)
    mail = django_mail.EmailMultiAlternatives(subject, message, from_email, recipient_list)
    if html_message:
        mail.attach_alternative(html_message, "text/html")
    if not mail.recipients():
        return 0
    return await asend_messages(backend, [mail])


async def asend_mass_mail(
    datatuple: Iterable[tuple[str, str, str | None, Sequence[str]]],
    fail_silently: bool = False,
    auth_user: str | None = None,
    auth_password: str | None = None,
    connection: Any = None,
    *,
    using: str | None = None,
) -> int:
    """``django.core.mail.send_mass_mail()``, awaited: one message per tuple, one connection."""
    backend = _connection(connection, using, fail_silently, auth_user, auth_password)
    messages = [
        django_mail.EmailMessage(subject, body, sender, recipients)
        for subject, body, sender, recipients in datatuple
    ]
    return await asend_messages(backend, messages)


async def _site_mail(
    setting: str,
    subject: str,
    message: str,
    fail_silently: bool,
    connection: Any,
    html_message: str | None,
    using: str | None,
) -> int:
    check_arguments(using=using, connection=connection, fail_silently=fail_silently)
    use_django_settings()
    # Checked as mailout checks it: addresses, lazy strings, or Django's older (name, address)
    # pairs; anything else raises ImproperlyConfigured naming the setting.
    recipients = conf.get(setting)
    if not recipients:
        return 0
    mail = django_mail.EmailMultiAlternatives(
        f"{conf.get('EMAIL_SUBJECT_PREFIX')}{subject}",
        message,
        conf.get("SERVER_EMAIL"),
        recipients,
    )
    if html_message:
        mail.attach_alternative(html_message, "text/html")
    return await asend_messages(_connection(connection, using, fail_silently), [mail])


async def amail_admins(
    subject: str,
    message: str,
    fail_silently: bool = False,
    connection: Any = None,
    html_message: str | None = None,
    *,
    using: str | None = None,
) -> int:
    """``django.core.mail.mail_admins()``, awaited; returns how many messages were sent (0/1)."""
    return await _site_mail(
        "ADMINS", subject, message, fail_silently, connection, html_message, using
    )


async def amail_managers(
    subject: str,
    message: str,
    fail_silently: bool = False,
    connection: Any = None,
    html_message: str | None = None,
    *,
    using: str | None = None,
) -> int:
    """``django.core.mail.mail_managers()``, awaited."""
    return await _site_mail(
        "MANAGERS", subject, message, fail_silently, connection, html_message, using
    )


async def asend(message: Any, fail_silently: bool = False, *, using: str | None = None) -> int:
    """``message.send()``, awaited, for a Django message (a mailout message has ``asend()``).

    The backend is picked as ``send()`` picks it: ``using``'s mailer, else the message's
    connection, else its ``get_connection()`` where it has one (Django 5.2), else the default.
    """
    if isinstance(message, MailoutMessage):
        return await message.asend(fail_silently, using=using)
    if not message.recipients():
        return 0
    # Django 6.1 keeps the connection in _connection (its property warns); 5.2 in connection.
    state = vars(message)
    connection = state.get("_connection", state.get("connection"))
    check_arguments(using=using, connection=connection, fail_silently=fail_silently)
    get_connection = getattr(message, "get_connection", None)
    if using is None and connection is None and get_connection is not None:
        backend = get_connection(fail_silently)
    else:
        backend = _connection(connection, using, fail_silently)
    return await asend_messages(backend, [message])
