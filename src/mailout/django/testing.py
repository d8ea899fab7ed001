"""Django's side of mailout's pytest fixtures: Django's own mail settings follow mailout's.

``mailout.testing`` uses these when the test process runs a Django project, so that
``mailoutbox`` and ``mail_catcher`` cover what Django's API sends as well as what mailout's does.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Mapping
from typing import Any, Final

from django.conf import settings  # type: ignore[import-untyped]
from django.core import mail  # type: ignore[import-untyped]
from django.test.utils import override_settings  # type: ignore[import-untyped]

from mailout.django.conf import mailers_configured, use_django_settings

__all__ = ["catcher_settings", "locmem_outbox", "overridden"]

LOCMEM: Final = "django.core.mail.backends.locmem.EmailBackend"
BACKEND: Final = "mailout.django.EmailBackend"
_MISSING: Final = object()


@contextlib.contextmanager
def overridden(values: Mapping[str, Any]) -> Iterator[None]:
    """``override_settings(**values)``, quiet about the EMAIL_* settings Django 6.1 deprecates:
    a test that points them somewhere is not the project using them."""
    override = override_settings(**values)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"The EMAIL_\w+ setting is deprecated")
        override.enable()
    try:
        yield
    finally:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"The EMAIL_\w+ setting is deprecated")
            override.disable()


def _every_mailer(config: dict[str, Any]) -> dict[str, Any]:
    return {"MAILERS": dict.fromkeys(settings.MAILERS, config)}


@contextlib.contextmanager
def locmem_outbox(outbox: list[Any]) -> Iterator[None]:
    """Django's mail to Django's locmem backend, into ``outbox`` (as ``django.core.mail.outbox``):
    every mailer with ``MAILERS``, else ``EMAIL_BACKEND`` (what Django's test runner does)."""
    use_django_settings()
    if mailers_configured():
        values = _every_mailer({"BACKEND": LOCMEM})
    else:
        values = {"EMAIL_BACKEND": LOCMEM}
    previous = vars(mail).get("outbox", _MISSING)
    mail.outbox = outbox
    try:
        with overridden(values):
            yield
    finally:
        if previous is _MISSING:
            del mail.outbox
        else:
            mail.outbox = previous


@contextlib.contextmanager
def catcher_settings(host: str, port: int) -> Iterator[None]:
    """Django's mail through mailout.django's backend to ``host:port``: every mailer with
    ``MAILERS`` (its other options dropped: TLS and credentials mean nothing to the catcher),
    else ``EMAIL_BACKEND`` and the ``EMAIL_*`` settings. ``MAILOUT_REDIRECT_TO`` is left as the
    project sets it, so a test can watch its staging redirect at work."""
    use_django_settings()
    if mailers_configured():
        values = _every_mailer({"BACKEND": BACKEND, "OPTIONS": {"host": host, "port": port}})
    else:
        values = {
            "EMAIL_BACKEND": BACKEND,
            "EMAIL_HOST": host,
            "EMAIL_PORT": port,
            "EMAIL_USE_TLS": False,
            "EMAIL_USE_SSL": False,
            "EMAIL_HOST_USER": "",
            "EMAIL_HOST_PASSWORD": "",
        }
    with overridden(values):
        yield
