"""Durations (``"7d"``, ``"300"``) and rates (``"14/s"``) as settings and options write them."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Final

__all__ = ["Rate", "parse_duration", "parse_rate"]

_SECONDS: Final = {
    "": 1.0,
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "minutes": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
    "hours": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
    "days": 86400.0,
    "w": 604800.0,
}
_DURATION: Final = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*", re.IGNORECASE)
_RATE: Final = re.compile(r"\s*(\d+(?:\.\d+)?)\s*/\s*([a-z]+)\s*", re.IGNORECASE)


def parse_duration(value: object, *, what: str) -> float:
    """Seconds from a number or ``"90"``, ``"300s"``, ``"67m"``, ``"2h"``, ``"5d"``, ``"1w"``.

    ``what`` names the setting or option in the error (a ``ValueError``).
    """
    if isinstance(value, bool):
        raise ValueError(f"{what}: expected a duration, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.fullmatch(value)):
        unit = _SECONDS.get(m[2].lower())
        if unit is None:
            raise ValueError(f"{what}: unknown unit {m[2]!r} in {value!r}; use s, m, h, d or w")
        seconds = float(m[1]) * unit
    else:
        raise ValueError(
            f"{what}: expected a duration such as 300, '300s', '67m', '5d'; got {value!r}"
        )
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{what}: expected a duration of 0 or more seconds, got {value!r}")
    return seconds


@dataclass(frozen=True, slots=True)
class Rate:
    """``count`` messages every ``period`` seconds (``"14/s"`` is ``Rate(14, 1.0)``)."""

    count: float
    period: float

    @property
    def per_second(self) -> float:
        return self.count / self.period

    def __str__(self) -> str:
        unit = {1.0: "s", 60.0: "min", 3600.0: "h", 86400.0: "d"}.get(self.period)
        count = int(self.count) if self.count == int(self.count) else self.count
        return f"{count}/{unit}" if unit else f"{count}/{self.period:g}s"


def parse_rate(value: object, *, what: str) -> Rate:
    """``"14/s"``, ``"600/min"``, ``"1000/h"``, ``"5000/d"`` (or ``/second``, ``/m``, ``/hour``)."""
    if isinstance(value, Rate):
        return value
    m = _RATE.fullmatch(value) if isinstance(value, str) else None
    if m is None:
        raise ValueError(f"{what}: expected a rate such as '14/s' or '600/min', got {value!r}")
    period = _SECONDS.get(m[2].lower())
    if period is None or m[2].lower() == "w":
        raise ValueError(f"{what}: unknown unit {m[2]!r} in {value!r}; use s, min, h or d")
    count = float(m[1])
    if count <= 0:
        raise ValueError(f"{what}: a rate must be above zero, got {value!r}")
    return Rate(count, period)
