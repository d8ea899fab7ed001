"""The checks of setting values, each turning a value as given into the setting's type.

Each takes the setting's name and its value (from configure(), the environment or ``EMAIL_URL``)
and returns it in its type, or raises ``ImproperlyConfigured`` naming the setting and what was
expected.
"""

from __future__ import annotations

import json
import os
import zoneinfo
from collections.abc import Mapping
from typing import Any, Final

from mailout._units import parse_duration, parse_rate
from mailout.exceptions import ImproperlyConfigured
from mailout.utils import lazy_text

__all__ = [
    "QUEUE_HOOK_EVENTS",
    "check_bool",
    "check_duration",
    "check_hooks",
    "check_mailers",
    "check_people",
    "check_port",
    "check_queue_url",
    "check_quotas",
    "check_rates",
    "check_str",
    "check_time_zone",
    "check_timeout",
    "check_whole",
]

QUEUE_HOOK_EVENTS: Final = ("pre_send", "sent", "deferred", "failed", "expired")

_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off", ""})


def check_bool(name: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ImproperlyConfigured(f"{name}: expected true or false, got {value!r}")


def check_port(name: str, value: object) -> int:
    try:
        port = int(str(value))
    except (TypeError, ValueError):
        raise ImproperlyConfigured(f"{name}: expected a port number, got {value!r}") from None
    if isinstance(value, float | bool) or not 0 < port < 65536:
        raise ImproperlyConfigured(f"{name}: expected a port number 1-65535, got {value!r}")
    return port


def check_timeout(name: str, value: object) -> float | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")):
        return None
    try:
        timeout = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ImproperlyConfigured(f"{name}: expected seconds as a number, got {value!r}") from None
    if isinstance(value, bool) or not timeout > 0:
        raise ImproperlyConfigured(f"{name}: expected a positive number of seconds, got {value!r}")
    return timeout


def check_str(name: str, value: object, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, os.PathLike) and optional:
        return str(os.fspath(value))
    raise ImproperlyConfigured(f"{name}: expected a string, got {type(value).__name__}")


def check_people(name: str, value: object) -> list[str]:
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


def check_time_zone(name: str, value: object) -> str | None:
    zone = check_str(name, value, optional=True)
    if zone:
        try:
            zoneinfo.ZoneInfo(zone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ImproperlyConfigured(f"{name}: unknown time zone {zone!r}") from None
    return zone or None


def check_mailers(name: str, value: object) -> dict[str, dict[str, Any]]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ImproperlyConfigured(f"{name}: expected a mapping of alias to configuration")
    return {str(k): v for k, v in value.items()}


def check_whole(name: str, value: object, *, minimum: int = 1) -> int:
    try:
        number = int(str(value))
    except ValueError:
        raise ImproperlyConfigured(f"{name}: expected a whole number, got {value!r}") from None
    if isinstance(value, bool | float) or number < minimum:
        raise ImproperlyConfigured(
            f"{name}: expected a whole number of at least {minimum}, got {value!r}"
        )
    return number


def check_duration(name: str, value: object) -> float:
    try:
        seconds = parse_duration(value, what=name)
    except ValueError as exc:
        raise ImproperlyConfigured(str(exc)) from None
    if seconds <= 0:
        raise ImproperlyConfigured(f"{name}: expected a duration above zero, got {value!r}")
    return seconds


def _from_json(name: str, text: str) -> object:
    """A value given as JSON text, as the environment carries a mapping."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ImproperlyConfigured(f"{name}: value is not JSON ({exc})") from None


def _per_mailer(name: str, value: object) -> dict[str, object]:
    """One value for every mailer (key ``"*"``), or a mapping of mailer to value (JSON in the
    environment)."""
    if value is None or value == "":
        return {}
    if isinstance(value, str) and value.lstrip().startswith("{"):
        value = _from_json(name, value)
    if isinstance(value, Mapping):
        return {str(k): v for k, v in value.items()}
    return {"*": value}


def check_rates(name: str, value: object) -> dict[str, Any]:
    try:
        values = _per_mailer(name, value)
        return {k: parse_rate(v, what=f"{name}[{k!r}]") for k, v in values.items()}
    except ValueError as exc:
        raise ImproperlyConfigured(str(exc)) from None


def check_quotas(name: str, value: object) -> dict[str, int]:
    return {k: check_whole(f"{name}[{k!r}]", v) for k, v in _per_mailer(name, value).items()}


def check_hooks(name: str, value: object) -> dict[str, list[str]]:
    if isinstance(value, str):
        value = _from_json(name, value) if value.strip() else {}
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


def check_queue_url(name: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ImproperlyConfigured(f"{name}: expected a URL such as sqlite:///mailout-queue.db")
    return value.strip()
