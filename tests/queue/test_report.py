"""What a worker prints: one logfmt line per event, or a live view with rich."""

from __future__ import annotations

import io
import logging
import re

from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from mailout.queue.live import LiveReporter
from mailout.queue.models import ClaimedMessage, Outcome, Priority, RecipientResult, Report, State
from mailout.queue.report import LineReporter, choose_reporter, install_log_handler, logfmt
from tests.queue.conftest import T0

_PAIR = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)')
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}


def _unescape(found: re.Match[str]) -> str:
    code = found[1]
    return chr(int(code[1:], 16)) if len(code) > 1 else _ESCAPES[code]


def parse(line: str) -> dict[str, str]:
    """A logfmt reader, as a log collector has one."""
    out = {}
    for key, value in _PAIR.findall(line):
        if value.startswith('"'):
            value = re.sub(r"\\(u[0-9a-f]{4}|U[0-9a-f]{8}|.)", _unescape, value[1:-1])
        out[key] = value
    return out


@given(st.dictionaries(st.from_regex(r"[a-z_]{1,10}", fullmatch=True), st.text(), max_size=6))
def test_logfmt_is_one_line_that_reads_back(fields: dict[str, str]) -> None:
    line = logfmt(fields)
    assert "\n" not in line
    assert "\r" not in line
    assert parse(line) == fields


def report(event: str = "sent") -> Report:
    message = ClaimedMessage(
        42, 2, "default", Priority.NORMAL, "s@x.com", ("a@x.com", "b@x.com"), b"x", "<m@x>", T0, T0
    )
    if event == "sent":
        results = (RecipientResult("a@x.com", "sent", 250, "2.0.0", "OK: queued as Q9", "Q9"),)
        outcome = Outcome(
            42, 2, State.SENT, results, (), delivered=1, summary="250 2.0.0 OK: queued as Q9"
        )
    else:
        results = (RecipientResult("a@x.com", "deferred", 451, "4.7.1", "later"),)
        outcome = Outcome(
            42, 2, State.DEFERRED, results, ("a@x.com",), due_at=T0 + 600, summary="451 later"
        )
    return Report(message, outcome)


def test_a_line_per_message() -> None:
    stream = io.StringIO()
    reporter = LineReporter(stream, clock=lambda: T0)
    reporter.delivered([report("sent"), report("deferred")])
    reporter.event(
        "batch-deferred", level=logging.WARNING, mailer="default", count=30, error="down"
    )
    sent, deferred, batch = (parse(line) for line in stream.getvalue().splitlines())
    assert sent == {
        "ts": "2027-01-15T08:00:00.000Z",
        "level": "info",
        "event": "sent",
        "id": "42",
        "mailer": "default",
        "attempt": "2",
        "recipients": "1",
        "code": "250",
        "relay_id": "Q9",
        "message_id": "<m@x>",
        "reply": "250 2.0.0 OK: queued as Q9",
    }
    assert deferred["next_attempt"] == "2027-01-15T08:10:00.000Z"
    assert deferred["refused"] == "a@x.com:451"
    assert (batch["level"], batch["event"], batch["count"]) == ("warning", "batch-deferred", "30")


def test_log_records_become_lines_too() -> None:
    stream = io.StringIO()
    install_log_handler(stream)
    try:
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            logging.getLogger("mailout.queue").exception("a hook raised")
    finally:
        logger = logging.getLogger("mailout")
        for handler in [h for h in logger.handlers if getattr(h, "_mailout_queue", False)]:
            logger.removeHandler(handler)
    [line] = stream.getvalue().splitlines()
    fields = parse(line)
    assert (fields["level"], fields["msg"]) == ("error", "a hook raised")
    assert "RuntimeError: boom" in fields["error"]


def test_live_progress() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120, color_system=None)
    live = LiveReporter(console=console)
    live.event("worker-started", store="/var/mail/q.db")
    live.status({"queued": 10, "deferred": 1, "sent": 0})
    live.delivered([report("sent"), report("sent"), report("deferred")])
    live.close()
    text = out.getvalue()
    assert "mailout queue worker · /var/mail/q.db" in text
    assert "sent 2" in text
    assert "deferred 1" in text
    assert "failed 0" in text
    assert "event=deferred id=42" in text  # deferrals scroll above the live view


def test_the_reporter_follows_the_terminal() -> None:
    assert type(choose_reporter(io.StringIO())) is LineReporter
    assert type(choose_reporter(io.StringIO(), live=False)) is LineReporter
    live = choose_reporter(io.StringIO(), live=True)
    assert isinstance(live, LiveReporter)
    live.close()
