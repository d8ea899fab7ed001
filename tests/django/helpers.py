"""What the tests of mailout.django share: the installed Django's features, mail settings."""

from __future__ import annotations

import contextlib
from typing import Any

import django
from django.core import mail

from mailout.django.testing import overridden

BACKEND = "mailout.django.EmailBackend"
DJANGO_SMTP = "django.core.mail.backends.smtp.EmailBackend"
#: Django 6.1's MAILERS (and mailers, using=) exist.
HAS_MAILERS = hasattr(mail, "mailers")
#: Django 6 builds messages with the modern email API; 5.2 with the email.mime classes.
MODERN = django.VERSION >= (6, 0)
STYLES = ["settings", "mailers"] if HAS_MAILERS else ["settings"]


def quiet_overrides(**values: Any) -> contextlib.AbstractContextManager[None]:
    """override_settings, without Django 6.1's deprecation warning for the EMAIL_* settings a
    test sets on purpose (the "settings" style is deprecated there, and still supported)."""
    return overridden(values)


def mail_settings(
    style: str, host: str, port: int, *, backend: str = BACKEND, **options: Any
) -> contextlib.AbstractContextManager[None]:
    """The project's default mail going to ``host:port`` through ``backend``, configured in
    ``style``: "settings" (EMAIL_BACKEND, EMAIL_HOST, ... and EMAIL_<OPTION>) or "mailers"
    (MAILERS["default"] with OPTIONS)."""
    if style == "mailers":
        config = {"BACKEND": backend, "OPTIONS": {"host": host, "port": port, **options}}
        return quiet_overrides(MAILERS={"default": config})
    extra = {f"EMAIL_{name.upper()}": value for name, value in options.items()}
    return quiet_overrides(EMAIL_BACKEND=backend, EMAIL_HOST=host, EMAIL_PORT=port, **extra)


def reference_backend(host: str, port: int) -> Any:
    """Django's own smtp backend to ``host:port`` (built with an alias: Django 6.1 deprecates
    building it without one; Django 5.2 ignores the keyword)."""
    from django.core.mail.backends.smtp import EmailBackend

    return EmailBackend(host=host, port=port, alias="reference")
