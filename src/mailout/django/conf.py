"""Django's settings as mailout's settings source, read as Django's own mail code reads them."""

from __future__ import annotations

from typing import Any, Final

import django.conf  # type: ignore[import-untyped]
from django.utils.functional import empty  # type: ignore[import-untyped]

from mailout import conf

__all__ = ["DjangoSettings", "django_settings", "mailers_configured", "use_django_settings"]

# mailout's settings (conf.DEFAULTS) are Django's names, plus mailout's own: EMAIL_POOL_SIZE and
# EMAIL_SSL_CAFILE, which a project may set in its settings module too.
_NAMES: Final = frozenset(conf.DEFAULTS)
# Django 6.1 deprecates these; with MAILERS defined it refuses them (AttributeError).
_REFUSED_WITH_MAILERS: Final[frozenset[str]] = frozenset(
    getattr(django.conf, "DEPRECATED_EMAIL_SETTINGS", ())
)
#: The queue hooks that send mailout.django.signals: a project's workers run them after its
#: own EMAIL_QUEUE_HOOKS.
SIGNAL_HOOKS: Final = {
    "sent": ["mailout.django.signals.on_sent"],
    "deferred": ["mailout.django.signals.on_deferred"],
    "failed": ["mailout.django.signals.on_failed"],
    "expired": ["mailout.django.signals.on_failed"],
}


def django_settings() -> Any:
    """The settings object behind ``django.conf.settings`` (set up on first use).

    Django 6.1 warns whenever code outside Django reads a deprecated ``EMAIL_*`` setting through
    ``django.conf.settings``, while Django's own mail backends read them silently. mailout reads
    them in that role, so it reads the object behind the lazy proxy, as Django's settings code
    itself does (``override_settings`` swaps that object, so overrides are seen).
    """
    settings = django.conf.settings
    if settings._wrapped is empty:
        settings.DEBUG  # noqa: B018 - the first access loads the settings module
    return settings._wrapped


def mailers_configured() -> bool:
    """Whether the project defines Django 6.1's ``MAILERS`` setting."""
    return hasattr(django_settings(), "MAILERS")


class DjangoSettings:
    """Django's settings, as the source of ``mailout.configure()``.

    Every mailout setting is read from the project's settings at call time, Django's defaults
    included: in a Django project its settings module is the one truth, and no environment
    variable overrides what it says. mailout's own settings (``EMAIL_POOL_SIZE``,
    ``EMAIL_SSL_CAFILE``) are read there too, and take mailout's defaults when not set. Two
    exceptions: ``EMAIL_TIMEOUT`` left at Django's default ``None`` means mailout's 30 seconds
    (a dead server must not hang a worker forever), and with Django 6.1's ``MAILERS`` defined the
    ``EMAIL_*`` settings Django then refuses read as not set. The queue's: ``EMAIL_QUEUE_URL``
    not set means ``"django"`` (the ``default`` database) when that database is SQLite or
    PostgreSQL, and ``EMAIL_QUEUE_HOOKS`` gains the hooks that send mailout.django.signals.
    """

    #: The queue's worker builds Django's backends when the project names them
    #: (mailout.queue.mailer; mailout.django.delivery hands them Django messages).
    native_django_backends = True

    def __getattr__(self, name: str) -> Any:
        if name not in _NAMES:
            raise AttributeError(name)
        holder = django_settings()
        if name in _REFUSED_WITH_MAILERS and hasattr(holder, "MAILERS"):
            raise AttributeError(name)
        if name == "EMAIL_QUEUE_HOOKS":
            own = getattr(holder, name, None) or {}
            if not isinstance(own, dict):
                return own  # mailout's check of the setting names the mistake
            merged: dict[str, Any] = dict(own)
            for event, paths in SIGNAL_HOOKS.items():
                mine = own.get(event, [])
                if isinstance(mine, str):
                    mine = [mine]
                if not isinstance(mine, list | tuple):
                    return own  # as above
                merged[event] = [*mine, *paths]
            return merged
        if name == "EMAIL_QUEUE_URL" and not hasattr(holder, name):
            from mailout.django.queue import default_url

            found = default_url()
            if found is None:
                raise AttributeError(name)  # mailout's default
            return found
        value = getattr(holder, name)  # AttributeError: not set, so mailout's default applies
        if name == "EMAIL_TIMEOUT" and value is None and not holder.is_overridden(name):
            return conf.DEFAULTS["EMAIL_TIMEOUT"]
        return value

    def __repr__(self) -> str:
        return "<Django's settings>"


_SOURCE: Final = DjangoSettings()


def use_django_settings() -> None:
    """Make mailout read Django's settings, unless it was configured with something else.

    Called when the app is ready and whenever a mailout.django backend or command is created,
    so that a project which names the backend without installing the app is covered too.
    """
    if conf._source is None:
        conf.configure(_SOURCE)
