"""Settings with Django's names, read at call time from configure(), the environment, defaults.

Precedence, per setting: the source given to :func:`configure` (a mapping such as Flask's
``app.config`` or an attribute object such as Django's ``settings``), then environment variables
of the same name, then ``EMAIL_URL`` (from the source, else the environment) for the settings it
implies, then the defaults below. Nothing is cached: a test that changes its source sees the change.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from typing import Any, Final

from mailout._email_url import BACKENDS, parse_email_url
from mailout._email_url import URL_SETTINGS as _FROM_URL
from mailout._setting_checks import (
    QUEUE_HOOK_EVENTS,
    check_bool,
    check_duration,
    check_hooks,
    check_mailers,
    check_people,
    check_port,
    check_queue_url,
    check_quotas,
    check_rates,
    check_str,
    check_time_zone,
    check_timeout,
    check_whole,
)
from mailout.exceptions import ImproperlyConfigured

# BACKENDS and parse_email_url (mailout._email_url) and QUEUE_HOOK_EVENTS (the checks of
# mailout._setting_checks) are imported from here too.
__all__ = [
    "BACKENDS",
    "DEFAULTS",
    "QUEUE_DEFAULTS",
    "QUEUE_HOOK_EVENTS",
    "configure",
    "get",
    "is_set",
    "parse_email_url",
    "raw",
    "settings",
]

DEFAULTS: Final[dict[str, Any]] = {
    "EMAIL_BACKEND": BACKENDS["smtp"],
    "EMAIL_HOST": "localhost",
    "EMAIL_PORT": 25,
    "EMAIL_HOST_USER": "",
    "EMAIL_HOST_PASSWORD": "",
    "EMAIL_USE_TLS": False,
    "EMAIL_USE_SSL": False,
    "EMAIL_SSL_CERTFILE": None,
    "EMAIL_SSL_KEYFILE": None,
    # mailout's own: a CA bundle to verify the server with instead of the system store.
    "EMAIL_SSL_CAFILE": None,
    # Django's default is None, which can hang a worker forever on a dead server.
    "EMAIL_TIMEOUT": 30.0,
    "EMAIL_FILE_PATH": None,
    # mailout's own: how many SMTP connections one send_messages() call may use at once.
    "EMAIL_POOL_SIZE": 4,
    "EMAIL_SUBJECT_PREFIX": "[Django] ",
    "EMAIL_USE_LOCALTIME": False,
    # Django's: the zone of EMAIL_USE_LOCALTIME dates; None means the machine's local time.
    "TIME_ZONE": None,
    "DEFAULT_CHARSET": "utf-8",
    "DEFAULT_FROM_EMAIL": "webmaster@localhost",
    "SERVER_EMAIL": "root@localhost",
    "ADMINS": [],
    "MANAGERS": [],
    "MAILERS": {},
}

_MISSING: Final = object()
_lock = threading.Lock()
_source: object = None


def configure(source: object = None) -> None:
    """Read settings from ``source`` (a mapping or an object with attributes) from now on.

    ``configure(None)`` goes back to environment variables and defaults only.
    """
    global _source
    with _lock:
        _source = source


def _from_source(source: object, name: str) -> object:
    if source is None:
        return _MISSING
    if isinstance(source, Mapping):
        return source.get(name, _MISSING)
    return getattr(source, name, _MISSING)


def _from_url(source: object, name: str) -> object:
    """What ``EMAIL_URL`` (from ``source``, else the environment) says of setting ``name``."""
    url = _from_source(source, "EMAIL_URL")
    if url is _MISSING:
        url = os.environ.get("EMAIL_URL", _MISSING)
    if not isinstance(url, str) or not url:
        return _MISSING
    return parse_email_url(url).get(name, _MISSING)


def is_set(name: str) -> bool:
    """Whether setting ``name`` is given anywhere (source, environment, ``EMAIL_URL``), as
    opposed to taking its default: ``MAILERS = {}`` is set (no mailers), a missing one is not."""
    if name not in DEFAULTS:
        raise KeyError(name)
    source = _source
    if _from_source(source, name) is not _MISSING or name in os.environ:
        return True
    return _from_url(source, name) is not _MISSING


def raw(name: str) -> object:
    """The value of setting ``name`` before checking, or the default; ``KeyError`` if unknown."""
    if name not in DEFAULTS:
        raise KeyError(name)
    source = _source
    value = _from_source(source, name)
    if value is not _MISSING:
        return value
    env = os.environ.get(name)
    if env is not None:
        return _from_env(name, env)
    if name not in _FROM_URL:
        return DEFAULTS[name]  # EMAIL_URL says nothing of it: no second lookup (per message)
    value = _from_url(source, name)
    if value is not _MISSING:
        return value
    return DEFAULTS[name]


def _from_env(name: str, text: str) -> object:
    """Turn an environment variable's text into the type the setting's default has."""
    default = DEFAULTS[name]
    if name in ("ADMINS", "MANAGERS"):
        return [part.strip() for part in text.split(",") if part.strip()]
    if name == "MAILERS":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ImproperlyConfigured(f"MAILERS: environment value is not JSON ({exc})") from None
    if isinstance(default, bool):
        return text  # checked by check_bool, which accepts yes/no words
    if name in ("EMAIL_PORT", "EMAIL_TIMEOUT", "EMAIL_POOL_SIZE"):
        return text  # checked (and converted) by its check in _CHECKS
    if text == "" and default is None:
        return None
    return text


_CHECKS: Final[dict[str, Any]] = {
    "EMAIL_POOL_SIZE": check_whole,
    "EMAIL_PORT": check_port,
    "EMAIL_TIMEOUT": check_timeout,
    "EMAIL_USE_TLS": check_bool,
    "EMAIL_USE_SSL": check_bool,
    "EMAIL_USE_LOCALTIME": check_bool,
    "EMAIL_SSL_CERTFILE": lambda n, v: check_str(n, v, optional=True),
    "EMAIL_SSL_KEYFILE": lambda n, v: check_str(n, v, optional=True),
    "EMAIL_SSL_CAFILE": lambda n, v: check_str(n, v, optional=True),
    "EMAIL_FILE_PATH": lambda n, v: check_str(n, v, optional=True),
    "TIME_ZONE": check_time_zone,
    "ADMINS": check_people,
    "MANAGERS": check_people,
}


def get(name: str) -> Any:
    """The checked value of setting ``name``; a bad value raises ImproperlyConfigured naming it."""
    value = raw(name)
    check = _CHECKS.get(name)
    if check is not None:
        return check(name, value)
    if name == "MAILERS":
        return check_mailers(name, value)
    return check_str(name, value)


class _Settings:
    """Attribute access to the current settings: ``settings.EMAIL_HOST`` is read on every access."""

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"mailout has no setting {name!r}")
        return get(name)

    def __dir__(self) -> list[str]:
        return sorted(DEFAULTS)

    def as_dict(self, *, mask_secrets: bool = True) -> dict[str, Any]:
        """Every effective setting; the password masked unless asked otherwise."""
        out = {name: get(name) for name in DEFAULTS}
        if mask_secrets and out["EMAIL_HOST_PASSWORD"]:
            out["EMAIL_HOST_PASSWORD"] = "********"
        if mask_secrets and out["EMAIL_QUEUE_URL"]:  # postgresql://user:password@...
            from mailout.utils import without_password

            out["EMAIL_QUEUE_URL"] = without_password(out["EMAIL_QUEUE_URL"])
        return out

    def __repr__(self) -> str:
        return "<mailout settings>"


settings: Final = _Settings()


# -- the durable queue (mailout.queue) -----------------------------------------------------------
# Kept together here so the queue's settings read like every other setting: configure() >
# environment > defaults, checked at call time, errors naming the setting.

QUEUE_DEFAULTS: Final[dict[str, Any]] = {
    # sqlite:///relative.db, sqlite:////absolute.db, memory: or postgresql://user@host/db
    "EMAIL_QUEUE_URL": "sqlite:///mailout-queue.db",
    # The mailer that delivers queued mail: a MAILERS alias or a dotted backend path; None is
    # the SMTP backend built from the EMAIL_* settings.
    "EMAIL_QUEUE_MAILER": None,
    "EMAIL_QUEUE_BATCH": 200,
    "EMAIL_QUEUE_CONCURRENCY": 2,
    # Deliveries of one mailer in flight at once in a worker; None: one for a mailer with a
    # pool of connections (which spreads each delivery), EMAIL_QUEUE_CONCURRENCY for others.
    "EMAIL_QUEUE_MAILER_CONCURRENCY": None,
    "EMAIL_QUEUE_LEASE": 60.0,
    # Postfix's minimal_backoff_time, maximal_backoff_time and maximal_queue_lifetime.
    "EMAIL_QUEUE_MIN_BACKOFF": 300.0,
    "EMAIL_QUEUE_MAX_BACKOFF": 4000.0,
    "EMAIL_QUEUE_LIFETIME": 5 * 86400.0,
    "EMAIL_QUEUE_RATE": None,
    "EMAIL_QUEUE_DAILY_QUOTA": None,
    # Postfix's default_destination_concurrency_limit.
    "EMAIL_QUEUE_DOMAIN_CONCURRENCY": 20,
    # Connections in use at once per mailer (a provider's limit), across every worker of a
    # shared store: an int for every mailer, or {"ses": 10}.
    "EMAIL_QUEUE_CONNECTIONS": None,
    "EMAIL_QUEUE_KEEP_BODY_AFTER_SEND": True,
    "EMAIL_QUEUE_HOOKS": {},
    # The longest an idle worker sleeps before it looks for due mail again (wake-ups from
    # PostgreSQL's NOTIFY come sooner).
    "EMAIL_QUEUE_POLL_INTERVAL": 1.0,
}


DEFAULTS.update(QUEUE_DEFAULTS)
_CHECKS.update(
    {
        "EMAIL_QUEUE_URL": check_queue_url,
        "EMAIL_QUEUE_MAILER": lambda n, v: check_str(n, v or None, optional=True),
        "EMAIL_QUEUE_BATCH": check_whole,
        "EMAIL_QUEUE_CONCURRENCY": check_whole,
        "EMAIL_QUEUE_MAILER_CONCURRENCY": lambda n, v: None if v is None else check_whole(n, v),
        "EMAIL_QUEUE_LEASE": check_duration,
        "EMAIL_QUEUE_MIN_BACKOFF": check_duration,
        "EMAIL_QUEUE_MAX_BACKOFF": check_duration,
        "EMAIL_QUEUE_LIFETIME": check_duration,
        "EMAIL_QUEUE_RATE": check_rates,
        "EMAIL_QUEUE_DAILY_QUOTA": check_quotas,
        "EMAIL_QUEUE_DOMAIN_CONCURRENCY": check_whole,
        "EMAIL_QUEUE_CONNECTIONS": check_quotas,
        "EMAIL_QUEUE_POLL_INTERVAL": check_duration,
        "EMAIL_QUEUE_KEEP_BODY_AFTER_SEND": check_bool,
        "EMAIL_QUEUE_HOOKS": check_hooks,
    }
)
