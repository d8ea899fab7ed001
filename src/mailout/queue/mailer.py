"""Which backend delivers queued mail: a ``MAILERS`` alias or a dotted backend path.

The name is stored with each message and resolved by the worker when it delivers, so a
``MAILERS`` entry changed between enqueue and delivery takes effect. It is checked at enqueue
too, so that a typo is an error in the caller, not a message failing days later.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from mailout import conf
from mailout.conf import settings
from mailout.exceptions import ImproperlyConfigured
from mailout.mailers import DEFAULT_MAILER_ALIAS, DEFAULT_MAILER_BACKEND, mailers
from mailout.utils import django_backends_as_named, import_string

if TYPE_CHECKING:
    from mailout.backends.base import BaseEmailBackend

__all__ = ["DEFAULT_MAILER", "build_mailer", "check_mailer", "mailer_name"]

#: Without EMAIL_QUEUE_MAILER: the SMTP backend built from the EMAIL_* settings. (Not
#: EMAIL_BACKEND: that is often the queue itself.)
DEFAULT_MAILER: Final = "mailout.backends.smtp.EmailBackend"


def mailer_name(mailer: str | None, *, setting: str = "mailer") -> str:
    """The name stored with a message: ``mailer``, else EMAIL_QUEUE_MAILER, else the SMTP
    backend; checked now (an unknown alias or path, or a queue delivering into a queue)."""
    if mailer is None:
        mailer, setting = settings.EMAIL_QUEUE_MAILER, "EMAIL_QUEUE_MAILER"
    if mailer is None:
        return DEFAULT_MAILER
    if not isinstance(mailer, str) or not mailer.strip():
        raise ImproperlyConfigured(f"{setting}: expected a MAILERS alias or a dotted path")
    check_mailer(mailer, setting=setting)
    return mailer


def _backend_path(name: str, setting: str) -> str:
    if mailers.is_configured:
        if name in mailers:
            entry = mailers.settings[name]
            path = entry.get("BACKEND", DEFAULT_MAILER_BACKEND) if isinstance(entry, dict) else None
            if not isinstance(path, str):
                raise ImproperlyConfigured(f"{setting}: MAILERS[{name!r}] has no usable BACKEND")
            return path
    elif name == DEFAULT_MAILER_ALIAS:
        return str(settings.EMAIL_BACKEND)
    if "." in name:
        return name
    known = ", ".join(repr(a) for a in mailers) or "none"
    raise ImproperlyConfigured(
        f"{setting}: {name!r} is neither a MAILERS alias (defined: {known}) nor a dotted "
        "backend path"
    )


def _as_named() -> bool:
    """In a Django project (mailout reads Django's settings), a mailer named by Django's
    backend path is Django's backend: mailout.django delivers Django messages to it."""
    return bool(getattr(conf._source, "native_django_backends", False))


def check_mailer(name: str, *, setting: str = "mailer") -> None:
    """Raise ImproperlyConfigured unless ``name`` resolves to a backend that is not a queue."""
    from mailout.backends.queue import EmailBackend as QueueBackend

    path = _backend_path(name, setting)
    with django_backends_as_named(_as_named()):
        backend_class = import_string(path, setting=setting)
    if isinstance(backend_class, type) and issubclass(backend_class, QueueBackend):
        raise ImproperlyConfigured(
            f"{setting}: {name!r} is a queue ({path}); queued mail must be delivered by a "
            "mailer that sends it (an SMTP, ESP or other backend), not queued again"
        )


def build_mailer(name: str, **overrides: Any) -> BaseEmailBackend:
    """A new backend for the mailer stored with a message."""
    is_alias = name in mailers if mailers.is_configured else name == DEFAULT_MAILER_ALIAS
    with django_backends_as_named(_as_named()):
        if is_alias:
            return mailers.create(name, **overrides)
        backend_class = import_string(name, setting=f"mailer {name!r}")
        return backend_class(**overrides)  # type: ignore[no-any-return]
