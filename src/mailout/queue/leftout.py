"""What a worker remembers of claims that left busy domains and mailers out and found nothing.

While a destination is at its connection cap (every worker's deliveries hold its slots), a
worker with a delivery thread free claims everything *but* that destination's mail. When the
queue holds nothing else, that claim finds nothing, and asking again before anything changed
would find nothing again: with four workers draining one big domain it was one wasted claim a
delivery, a tenth of PostgreSQL's work a message. So the worker does not ask again, with the
same or more left out, for ``pause`` seconds (its poll interval), unless new mail is announced
(``forget``: the store's wake-up, leases that expired). Leaving out less than every claim
remembered (a delivery ended, its slots are free) asks at once. Several recent claims are
remembered, each with what it left out, so that sets that come and go in turn (a domain's cap,
a mailer's batch claimed ahead) do not make every other claim ask again. Mail of another
domain that becomes due meanwhile waits at most ``pause``, as after a lost wake-up.
"""

from __future__ import annotations

import threading
from collections.abc import Collection

from mailout.queue.storage._claim import HeldBack, excluded

__all__ = ["LeftOut"]


class LeftOut:
    def __init__(self, pause: float) -> None:
        self.pause = pause
        self._held = HeldBack()  # what a claim left out -> when to ask again
        self._news = 0  # how many times new mail was announced
        self._lock = threading.Lock()  # forget() comes from the store's listener thread

    def news(self) -> int:
        """Read before a claim, handed to ``found_nothing`` after it: mail announced while the
        claim ran (its wake-up already spent) must not be paused away."""
        with self._lock:
            return self._news

    def found_nothing(
        self, domains: Collection[str], mailers: Collection[str], now: float, *, news: int
    ) -> None:
        """A claim leaving ``domains`` and ``mailers`` out found nothing at ``now``."""
        if not (domains or mailers):
            return
        with self._lock:
            if news == self._news:  # else new mail came while it ran: the next claim asks
                self._held.hold(excluded(mailers, domains), now + self.pause)

    def wait(self, domains: Collection[str], mailers: Collection[str], now: float) -> float:
        """How long a claim leaving these out would surely find nothing (0: claim now)."""
        if not (domains or mailers):
            return 0.0
        until = self._held.until(excluded(mailers, domains), now)
        # At most one pause from now, even if the clock stepped back since.
        return min(self.pause, until - now)

    def forget(self) -> None:
        """New mail: the next claim asks."""
        with self._lock:
            self._held.release()
            self._news += 1
