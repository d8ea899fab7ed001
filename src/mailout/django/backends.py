"""``EMAIL_BACKEND = "mailout.django.EmailBackend"``: Django's messages over mailout's SMTP pool."""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any, Final

from django.core import mail as django_mail  # type: ignore[import-untyped]
from django.core.mail.backends.base import (  # type: ignore[import-untyped]
    BaseEmailBackend as DjangoBaseEmailBackend,
)

from mailout.backends.smtp import EmailBackend as SMTPBackend
from mailout.django import redirect, serialize
from mailout.django.conf import use_django_settings
from mailout.exceptions import InvalidMailer as MailoutInvalidMailer
from mailout.smtp import Envelope

__all__ = ["DjangoConfigured", "EmailBackend", "InvalidMailer"]

_OPTIONS: Final = frozenset(inspect.signature(SMTPBackend.__init__).parameters) - {"self"}


def _django_invalid_mailer() -> tuple[type[Exception], ...]:
    django_error = getattr(django_mail, "InvalidMailer", None)  # Django 6.1's
    return () if django_error is None else (django_error,)


class InvalidMailer(MailoutInvalidMailer, *_django_invalid_mailer()):  # type: ignore[misc]
    """A MAILERS entry this backend cannot be built from: mailout's InvalidMailer, and Django
    6.1's too, so that a project's ``except InvalidMailer`` catches it."""


class DjangoConfigured:
    """Built the way Django builds a backend: Django's settings read, the names Django 6.1
    may pass along ignored when the backend has no such option (``options``), and an
    InvalidMailer raised as the one Django's code catches. Mixed in first."""

    options: frozenset[str] = frozenset()

    def __init__(
        self, *args: Any, _ignore_unknown_kwargs: Iterable[str] | None = None, **kwargs: Any
    ) -> None:
        use_django_settings()
        # Django 6.1's get_connection(**kwargs) with MAILERS passes its arguments along with
        # the names a backend may ignore when it does not know them.
        for name in _ignore_unknown_kwargs or ():
            if name not in self.options:
                kwargs.pop(name, None)
        try:
            super().__init__(*args, **kwargs)
        except MailoutInvalidMailer as exc:
            raise InvalidMailer(str(exc)) from None  # the text names the alias already


class EmailBackend(DjangoConfigured, SMTPBackend, DjangoBaseEmailBackend):  # type: ignore[misc]
    """A Django email backend (a subclass of Django's ``BaseEmailBackend``) that sends Django's
    message objects, and mailout's, through mailout's pipelining client and connection pool.

    Configured like Django's smtp backend: from the ``EMAIL_*`` settings (plus mailout's
    ``EMAIL_POOL_SIZE`` and ``EMAIL_SSL_CAFILE``) when built by ``get_connection()``, or from a
    ``MAILERS`` entry's ``OPTIONS`` alone when built with an ``alias`` (Django 6.1). Options:
    ``host``, ``port``, ``username``, ``password``, ``use_tls``, ``use_ssl``, ``timeout``,
    ``ssl_keyfile``, ``ssl_certfile``, ``ssl_cafile``, ``pool_size``, ``allow_insecure_auth``,
    ``data_done_timeout``, ``fail_silently``. After ``send_messages()``, ``results`` holds a
    ``SendResult`` or the ``SMTPError`` of each message. ``MAILOUT_REDIRECT_TO`` (see
    mailout.django.redirect) applies to every message.
    """

    options = _OPTIONS

    def __repr__(self) -> str:  # never the password
        alias = f" alias={self.alias!r}" if getattr(self, "alias", None) is not None else ""
        where = f"{getattr(self, 'host', '?')}:{getattr(self, 'port', '?')}"
        return f"<mailout.django.EmailBackend {where}{alias}>"

    def _envelope(self, message: Any) -> Envelope:
        found = serialize.envelope(message)
        redirected = redirect.current()
        return found if redirected is None else redirected.envelope(found)

    def _serialize(self, message: Any, envelope: Envelope) -> bytes:
        return serialize.render(message, smtputf8=envelope.smtputf8, redirect=redirect.current())

    def _check(self, message: Any) -> None:
        serialize.check(message)
