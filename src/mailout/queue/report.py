"""What a worker tells its operator: one structured line per event, or live progress.

Not in a terminal (a service's log), every event is one ``logfmt`` line, so a log collector
can parse it: ``2026-11-28T10:46:03.120Z event=sent id=42 mailer=default attempt=1 ...``.
In a terminal with ``rich`` installed (``pip install "mailout[rich]"``), the worker shows live
counts and rates instead, and prints only deferrals, failures and warnings.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from mailout.queue.models import Report, iso

__all__ = [
    "LineReporter",
    "LogfmtFormatter",
    "Reporter",
    "choose_reporter",
    "install_log_handler",
    "logfmt",
]

log = logging.getLogger("mailout.queue")


def logfmt(fields: dict[str, Any]) -> str:
    r"""``key=value`` pairs on one line. A value with a space, a quote, ``=``, a backslash or
    anything unprintable is quoted; inside quotes ``\``, ``\"``, ``\n``, ``\r``, ``\t``
    and ``\uXXXX`` or ``\UXXXXXXXX`` (any other unprintable character) are escaped."""
    parts = []
    for key, value in fields.items():
        if value is None:
            continue
        if type(value) is int:  # ids, attempts, codes: nothing to quote (most of a line)
            parts.append(f"{key}={value}")
            continue
        text = str(value)
        printable = text.isprintable()  # at C speed: a worker writes a line per message
        if not text or not printable or _QUOTED.search(text):
            if printable:
                text = text.replace("\\", "\\\\").replace('"', '\\"')
            else:
                text = "".join(_escape(c) for c in text)
            text = f'"{text}"'
        parts.append(f"{key}={text}")
    return " ".join(parts)


_QUOTED = re.compile(r'[ "=\\]')


_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(char: str) -> str:
    if char in _ESCAPES:
        return _ESCAPES[char]
    if char.isprintable():
        return char
    return f"\\u{ord(char):04x}" if ord(char) <= 0xFFFF else f"\\U{ord(char):08x}"


class Reporter:
    """Receives the worker's events. The base class writes nothing; subclasses choose where."""

    #: Ask the worker for the queue's counts now and then (a live view; costs a query).
    wants_status = False

    def event(self, name: str, *, level: int = logging.INFO, **fields: Any) -> None:
        """A worker event (started, relay-down, lease-lost, stopped, ...)."""

    def delivered(self, reports: Sequence[Report]) -> None:
        """The committed outcome of each message of one delivery."""

    def status(self, counts: dict[str, int]) -> None:
        """The queue's counts by state, now and then (for live views)."""

    def close(self) -> None:
        """The worker stopped."""


def report_fields(report: Report) -> dict[str, Any]:
    """The fields of a message's log line."""
    message, outcome = report.message, report.outcome
    fields: dict[str, Any] = {
        "event": outcome.event,
        "id": message.id,
        "mailer": message.mailer,
        "attempt": message.attempt,
        "recipients": len(outcome.results),
    }
    sent = [r for r in outcome.results if r.status == "sent"]
    if sent:
        fields["code"] = sent[0].code
        fields["relay_id"] = sent[0].relay_id
    refused = [r for r in outcome.results if r.status != "sent"]
    if refused:
        fields["refused"] = ",".join(f"{r.recipient}:{r.code or '-'}" for r in refused[:5])
    if outcome.due_at is not None:
        fields["next_attempt"] = iso(outcome.due_at)
    fields["message_id"] = message.message_id
    if outcome.reason:
        fields["reason"] = outcome.reason
    fields["reply"] = outcome.summary
    return fields


class LineReporter(Reporter):
    """One logfmt line per event: to ``stream`` (a time stamp first), or, with no stream, to
    the ``mailout.queue`` logger."""

    def __init__(self, stream: TextIO | None = None, *, clock: Callable[[], float] = time.time):
        self._stream = stream
        self._clock = clock
        self._lock = threading.Lock()

    def _write(self, level: int, fields: dict[str, Any]) -> None:
        if self._stream is None:
            log.log(level, "%s", logfmt(fields))
            return
        line = logfmt(
            {"ts": iso(self._clock()), "level": logging.getLevelName(level).lower(), **fields}
        )
        with self._lock:
            self._stream.write(line + "\n")
            self._stream.flush()

    def event(self, name: str, *, level: int = logging.INFO, **fields: Any) -> None:
        self._write(level, {"event": name, **fields})

    def delivered(self, reports: Sequence[Report]) -> None:
        if self._stream is None or not reports:
            for report in reports:
                self._write(_level(report), report_fields(report))
            return
        # The outcomes of one commit: one time stamp, one write and one flush (a system call
        # per message, each a chance for the worker's other threads to take the GIL, was most
        # of a line's cost).
        ts = iso(self._clock())
        starts = {
            level: logfmt({"ts": ts, "level": logging.getLevelName(level).lower()}) + " "
            for level in (logging.INFO, logging.WARNING)
        }
        text = "".join(starts[_level(r)] + logfmt(report_fields(r)) + "\n" for r in reports)
        with self._lock:
            self._stream.write(text)
            self._stream.flush()


def _level(report: Report) -> int:
    return logging.INFO if report.outcome.event in ("sent", "deferred") else logging.WARNING


def choose_reporter(stream: TextIO | None = None, *, live: bool | None = None) -> Reporter:
    """Live progress when ``stream`` (stderr) is a terminal and rich is installed; else lines."""
    stream = sys.stderr if stream is None else stream
    if live is None:
        live = bool(getattr(stream, "isatty", lambda: False)())
    if live:
        try:
            from mailout.queue.live import LiveReporter
        except ImportError:
            pass  # rich is not installed: lines are fine in a terminal too
        else:
            return LiveReporter(stream)
    return LineReporter(stream)


class LogfmtFormatter(logging.Formatter):
    """Log records as logfmt lines too (a traceback escaped into one ``error`` field)."""

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = {
            "ts": iso(record.created),
            "level": record.levelname.lower(),
            "event": "log",
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            fields["error"] = self.formatException(record.exc_info)
        return logfmt(fields)


def install_log_handler(stream: TextIO) -> None:
    """Send mailout's warnings and errors (a hook that raised, a mailer that cannot be
    built) to ``stream`` as logfmt lines, once per process."""
    logger = logging.getLogger("mailout")
    if any(getattr(h, "_mailout_queue", False) for h in logger.handlers):
        return
    handler = logging.StreamHandler(stream)
    handler.setFormatter(LogfmtFormatter())
    handler.setLevel(logging.WARNING)
    handler._mailout_queue = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    if logger.level == logging.NOTSET or logger.level > logging.WARNING:
        logger.setLevel(logging.WARNING)
