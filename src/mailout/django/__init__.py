"""mailout inside Django: one setting gives a Django project mailout's SMTP client and pool.

``EMAIL_BACKEND = "mailout.django.EmailBackend"`` (or a ``MAILERS`` entry's ``BACKEND``) sends
Django's own message objects; ``"mailout.django.QueueBackend"`` stores them in mailout's durable
queue (by default in the project's own database, inside Django's transactions); ``asend_mail``
and friends are their async twins; with ``"mailout.django"`` in ``INSTALLED_APPS`` (label
``mailout``), ``manage.py mailout`` is mailout's command line with the project's settings and
``manage.py migrate`` creates the queue's tables. Needs Django: ``pip install "mailout[django]"``.

Names are imported on first use, so that Django importing this app for its ``AppConfig`` does
not load the SMTP client.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

try:
    import django  # type: ignore[import-untyped]  # noqa: F401
except ImportError as exc:  # pragma: no cover - tests/django/test_app.py runs it in a subprocess
    raise ImportError(
        'mailout.django needs Django: pip install "mailout[django]"', name="django"
    ) from exc

if TYPE_CHECKING:
    from mailout.django.backends import EmailBackend
    from mailout.django.mail import (
        amail_admins,
        amail_managers,
        asend,
        asend_mail,
        asend_mass_mail,
        asend_messages,
    )
    from mailout.django.queue_backend import QueueBackend, enqueue

__all__ = [
    "EmailBackend",
    "QueueBackend",
    "amail_admins",
    "amail_managers",
    "asend",
    "asend_mail",
    "asend_mass_mail",
    "asend_messages",
    "enqueue",
]

# Where each public name lives.
_HOMES = {
    "EmailBackend": "mailout.django.backends",
    "QueueBackend": "mailout.django.queue_backend",
    "enqueue": "mailout.django.queue_backend",
    "amail_admins": "mailout.django.mail",
    "amail_managers": "mailout.django.mail",
    "asend": "mailout.django.mail",
    "asend_mail": "mailout.django.mail",
    "asend_mass_mail": "mailout.django.mail",
    "asend_messages": "mailout.django.mail",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'mailout.django' has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
