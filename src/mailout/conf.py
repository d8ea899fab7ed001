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
import zoneinfo
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import parse_qs, unquote, urlsplit

from mailout._units import parse_duration, parse_rate
from mailout.exceptions import ImproperlyConfigured
from mailout.utils import lazy_text

__all__ = ["DEFAULTS", "configure", "is_set", "settings"]

BACKENDS: Final = {
    "smtp": "mailout.backends.smtp.EmailBackend",
    "console": "mailout.backends.console.EmailBackend",
    "filebased": "mailout.backends.filebased.EmailBackend",
    "locmem": "mailout.backends.locmem.EmailBackend",
    "dummy": "mailout.backends.dummy.EmailBackend",
}

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
# The settings EMAIL_URL can stand for (parse_email_url); the others never look it up.
_FROM_URL: Final = frozenset(
    {
        "EMAIL_BACKEND",
        "EMAIL_HOST",
        "EMAIL_PORT",
        "EMAIL_HOST_USER",
        "EMAIL_HOST_PASSWORD",
        "EMAIL_USE_TLS",
        "EMAIL_USE_SSL",
        "EMAIL_TIMEOUT",
        "EMAIL_FILE_PATH",
    }
)
_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off", ""})

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


def _from_url(url: object, name: str) -> object:
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
    url = _from_source(source, "EMAIL_URL")
    if url is _MISSING:
        url = os.environ.get("EMAIL_URL", _MISSING)
    return _from_url(url, name) is not _MISSING


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
    url = _from_source(source, "EMAIL_URL")
    if url is _MISSING:
        url = os.environ.get("EMAIL_URL", _MISSING)
    value = _from_url(url, name)
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
        return text  # checked by _check_bool, which accepts yes/no words
    if name in ("EMAIL_PORT", "EMAIL_TIMEOUT", "EMAIL_POOL_SIZE"):
        return text  # checked (and converted) below
    if text == "" and default is None:
        return None
    return text


def parse_email_url(url: str) -> dict[str, object]:
    """Expand ``EMAIL_URL`` into the settings it stands for.

    ``smtp://user:pass@host:587?tls=starttls``, ``smtps://…`` (implicit TLS), ``console:``,
    ``file:///path``, ``locmem:``, ``dummy:``; ``?timeout=10`` is accepted with any scheme.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ImproperlyConfigured(f"EMAIL_URL: cannot parse {_mask_url(url)!r} ({exc})") from None
    scheme = parts.scheme.lower()
    query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    out: dict[str, object] = {}
    if scheme in ("smtp", "smtps", "submission"):
        out["EMAIL_BACKEND"] = BACKENDS["smtp"]
        out["EMAIL_HOST"] = parts.hostname or "localhost"
        out["EMAIL_USE_SSL"] = scheme == "smtps"
        tls = query.get("tls", "").lower()
        if tls not in ("", "starttls", "ssl", "implicit", "none"):
            raise ImproperlyConfigured(
                f"EMAIL_URL: tls={tls!r} is not one of starttls, ssl, implicit, none"
            )
        out["EMAIL_USE_TLS"] = tls == "starttls" or (scheme == "submission" and tls == "")
        if tls in ("ssl", "implicit"):
            out["EMAIL_USE_SSL"] = True
        default_port = 465 if out["EMAIL_USE_SSL"] else 587 if out["EMAIL_USE_TLS"] else 25
        out["EMAIL_PORT"] = port if port is not None else default_port
        if parts.username:
            out["EMAIL_HOST_USER"] = unquote(parts.username)
        if parts.password:
            out["EMAIL_HOST_PASSWORD"] = unquote(parts.password)
    elif scheme == "file":
        out["EMAIL_BACKEND"] = BACKENDS["filebased"]
        out["EMAIL_FILE_PATH"] = unquote(parts.path) or None
    elif scheme in ("console", "locmem", "dummy"):
        out["EMAIL_BACKEND"] = BACKENDS[scheme]
    else:
        raise ImproperlyConfigured(
            f"EMAIL_URL: unknown scheme {scheme!r}; use smtp, smtps, submission, console, file, "
            "locmem or dummy"
        )
    if "timeout" in query:
        out["EMAIL_TIMEOUT"] = query["timeout"]
    return out


def _mask_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(":" + parts.password + "@", ":***@", 1)
    return url


def _check_bool(name: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ImproperlyConfigured(f"{name}: expected true or false, got {value!r}")


def _check_port(name: str, value: object) -> int:
    try:
        port = int(str(value))
    except (TypeError, ValueError):
        raise ImproperlyConfigured(f"{name}: expected a port number, got {value!r}") from None
    if isinstance(value, float | bool) or not 0 < port < 65536:
        raise ImproperlyConfigured(f"{name}: expected a port number 1-65535, got {value!r}")
    return port


def _check_timeout(name: str, value: object) -> float | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")):
        return None
    try:
        timeout = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ImproperlyConfigured(f"{name}: expected seconds as a number, got {value!r}") from None
    if isinstance(value, bool) or not timeout > 0:
        raise ImproperlyConfigured(f"{name}: expected a positive number of seconds, got {value!r}")
    return timeout


def _check_str(name: str, value: object, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, os.PathLike) and optional:
        return str(os.fspath(value))
    raise ImproperlyConfigured(f"{name}: expected a string, got {type(value).__name__}")


def _check_people(name: str, value: object) -> list[str]:
    """ADMINS / MANAGERS: addresses (lazy strings too), or Django's older ``(name, address)``
    pairs, whose address is kept."""
    wrong = f"{name}: The {name} setting must be a list of email address strings."
    if not isinstance(value, list | tuple):
        raise ImproperlyConfigured(f"{wrong} Got {value!r}.")
    out = []
    for item in value:
        item = lazy_text(item)
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, list | tuple) and len(item) == 2 and isinstance(item[1], str):
            out.append(item[1])
        else:
            raise ImproperlyConfigured(f"{wrong} Got the entry {item!r}.")
    return out


def _check_time_zone(name: str, value: object) -> str | None:
    zone = _check_str(name, value, optional=True)
    if zone:
        try:
            zoneinfo.ZoneInfo(zone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ImproperlyConfigured(f"{name}: unknown time zone {zone!r}") from None
    return zone or None


def _check_pool_size(name: str, value: object) -> int:
    try:
        size = int(str(value))
    except ValueError:
        raise ImproperlyConfigured(f"{name}: expected a whole number, got {value!r}") from None
    if isinstance(value, bool | float) or size < 1:
        raise ImproperlyConfigured(f"{name}: expected a whole number of at least 1, got {value!r}")
    return size


_CHECKS: Final[dict[str, Any]] = {
    "EMAIL_POOL_SIZE": _check_pool_size,
    "EMAIL_PORT": _check_port,
    "EMAIL_TIMEOUT": _check_timeout,
    "EMAIL_USE_TLS": _check_bool,
    "EMAIL_USE_SSL": _check_bool,
    "EMAIL_USE_LOCALTIME": _check_bool,
    "EMAIL_SSL_CERTFILE": lambda n, v: _check_str(n, v, optional=True),
    "EMAIL_SSL_KEYFILE": lambda n, v: _check_str(n, v, optional=True),
    "EMAIL_SSL_CAFILE": lambda n, v: _check_str(n, v, optional=True),
    "EMAIL_FILE_PATH": lambda n, v: _check_str(n, v, optional=True),
    "TIME_ZONE": _check_time_zone,
    "ADMINS": _check_people,
    "MANAGERS": _check_people,
}


def _check_mailers(name: str, value: object) -> dict[str, dict[str, Any]]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ImproperlyConfigured(f"{name}: expected a mapping of alias to configuration")
    return {str(k): v for k, v in value.items()}


def get(name: str) -> Any:
    """The checked value of setting ``name``; a bad value raises ImproperlyConfigured naming it."""
    value = raw(name)
    check = _CHECKS.get(name)
    if check is not None:
        return check(name, value)
    if name == "MAILERS":
        return _check_mailers(name, value)
    return _check_str(name, value)


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
QUEUE_HOOK_EVENTS: Final = ("pre_send", "sent", "deferred", "failed", "expired")


def _check_whole(name: str, value: object, *, minimum: int = 1) -> int:
    try:
        number = int(str(value))
    except ValueError:
        raise ImproperlyConfigured(f"{name}: expected a whole number, got {value!r}") from None
    if isinstance(value, bool | float) or number < minimum:
        raise ImproperlyConfigured(
            f"{name}: expected a whole number of at least {minimum}, got {value!r}"
        )
    return number


def _check_duration(name: str, value: object) -> float:
    try:
        seconds = parse_duration(value, what=name)
    except ValueError as exc:
        raise ImproperlyConfigured(str(exc)) from None
    if seconds <= 0:
        raise ImproperlyConfigured(f"{name}: expected a duration above zero, got {value!r}")
    return seconds


def _per_mailer(name: str, value: object) -> dict[str, object]:
    """One value for every mailer (key ``"*"``), or a mapping of mailer to value (JSON in the
    environment)."""
    if value is None or value == "":
        return {}
    if isinstance(value, str) and value.lstrip().startswith("{"):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ImproperlyConfigured(f"{name}: value is not JSON ({exc})") from None
    if isinstance(value, Mapping):
        return {str(k): v for k, v in value.items()}
    return {"*": value}


def _check_rates(name: str, value: object) -> dict[str, Any]:
    try:
        values = _per_mailer(name, value)
        return {k: parse_rate(v, what=f"{name}[{k!r}]") for k, v in values.items()}
    except ValueError as exc:
        raise ImproperlyConfigured(str(exc)) from None


def _check_quotas(name: str, value: object) -> dict[str, int]:
    return {k: _check_whole(f"{name}[{k!r}]", v) for k, v in _per_mailer(name, value).items()}


def _check_hooks(name: str, value: object) -> dict[str, list[str]]:
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except json.JSONDecodeError as exc:
            raise ImproperlyConfigured(f"{name}: value is not JSON ({exc})") from None
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ImproperlyConfigured(f"{name}: expected a mapping of event to dotted paths")
    out: dict[str, list[str]] = {}
    for event, paths in value.items():
        if event not in QUEUE_HOOK_EVENTS:
            raise ImproperlyConfigured(
                f"{name}: unknown event {event!r}; use {', '.join(QUEUE_HOOK_EVENTS)}"
            )
        listed = [paths] if isinstance(paths, str) else paths
        if not isinstance(listed, list | tuple) or not all(isinstance(p, str) for p in listed):
            raise ImproperlyConfigured(f"{name}[{event!r}]: expected dotted paths")
        out[event] = list(listed)
    return out


def _check_queue_url(name: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ImproperlyConfigured(f"{name}: expected a URL such as sqlite:///mailout-queue.db")
    return value.strip()


DEFAULTS.update(QUEUE_DEFAULTS)
_CHECKS.update(
    {
        "EMAIL_QUEUE_URL": _check_queue_url,
        "EMAIL_QUEUE_MAILER": lambda n, v: _check_str(n, v or None, optional=True),
        "EMAIL_QUEUE_BATCH": _check_whole,
        "EMAIL_QUEUE_CONCURRENCY": _check_whole,
        "EMAIL_QUEUE_LEASE": _check_duration,
        "EMAIL_QUEUE_MIN_BACKOFF": _check_duration,
        "EMAIL_QUEUE_MAX_BACKOFF": _check_duration,
        "EMAIL_QUEUE_LIFETIME": _check_duration,
        "EMAIL_QUEUE_RATE": _check_rates,
        "EMAIL_QUEUE_DAILY_QUOTA": _check_quotas,
        "EMAIL_QUEUE_DOMAIN_CONCURRENCY": _check_whole,
        "EMAIL_QUEUE_CONNECTIONS": _check_quotas,
        "EMAIL_QUEUE_POLL_INTERVAL": _check_duration,
        "EMAIL_QUEUE_KEEP_BODY_AFTER_SEND": _check_bool,
        "EMAIL_QUEUE_HOOKS": _check_hooks,
    }
)
