"""Live progress of a worker in a terminal, drawn with rich (``pip install "mailout[rich]"``).

Importing this module without rich raises ImportError; ``choose_reporter`` then falls back
to one log line per event.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from mailout.queue.models import Report
from mailout.queue.report import Reporter, logfmt, report_fields

__all__ = ["LiveReporter"]


class LiveReporter(Reporter):
    """Counts, rate and the queue's size, refreshed in place; deferrals, failures and warnings
    scroll above them."""

    wants_status = True

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        console: Console | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.console = console or Console(file=stream, stderr=stream is None)
        self._clock = clock
        self._lock = threading.Lock()
        self.title = "mailout queue worker"
        self.sent = self.deferred = self.failed = 0
        self.queue: dict[str, int] = {}
        self._window: deque[tuple[float, int]] = deque(maxlen=64)
        self._live = Live(self._render(), console=self.console, refresh_per_second=4)
        self._live.start()

    def _rate(self) -> float:
        now = self._clock()
        while self._window and now - self._window[0][0] > 10:
            self._window.popleft()
        if len(self._window) < 2:
            return 0.0
        (t0, n0), (t1, n1) = self._window[0], self._window[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0

    def _render(self) -> Group:
        counts = Table.grid(padding=(0, 3))
        counts.add_row(
            Text(f"sent {self.sent:,}", style="green"),
            Text(f"deferred {self.deferred:,}", style="yellow"),
            Text(f"failed {self.failed:,}", style="red"),
            Text(f"{self._rate():,.0f} msg/s"),
        )
        waiting = self.queue.get("queued", 0) + self.queue.get("deferred", 0)
        done = self.sent + self.failed
        parts: list[Any] = [Text(self.title, style="bold"), counts]
        if self.queue:
            line = ", ".join(f"{k} {v:,}" for k, v in self.queue.items() if v)
            parts.append(Text(f"queue: {line or 'empty'}", style="dim"))
            parts.append(ProgressBar(total=max(1, done + waiting), completed=done, width=60))
        return Group(*parts)

    def _refresh(self) -> None:
        self._live.update(self._render())

    def event(self, name: str, *, level: int = logging.INFO, **fields: Any) -> None:
        with self._lock:
            if name == "worker-started":
                self.title = f"mailout queue worker · {fields.get('store', '')}"
            if level >= logging.WARNING or name in ("worker-stopping", "worker-stopped"):
                self.console.print(Text(logfmt({"event": name, **fields}), style="yellow"))
            self._refresh()

    def delivered(self, reports: Sequence[Report]) -> None:
        with self._lock:
            for report in reports:
                event = report.outcome.event
                if event == "sent":
                    self.sent += 1
                    continue
                if event == "deferred":
                    self.deferred += 1
                else:
                    self.failed += 1
                style = "yellow" if event == "deferred" else "red"
                self.console.print(Text(logfmt(report_fields(report)), style=style))
            self._window.append((self._clock(), self.sent + self.failed))
            self._refresh()

    def status(self, counts: dict[str, int]) -> None:
        with self._lock:
            self.queue = dict(counts)
            self._refresh()

    def close(self) -> None:
        with self._lock:
            self._refresh()
            self._live.stop()
