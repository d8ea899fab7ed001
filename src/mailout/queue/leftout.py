"""What a worker remembers of a claim that left busy domains and mailers out and found nothing.

While a destination is at its connection cap (every worker's deliveries hold its slots), a
worker with a delivery thread free claims everything *but* that destination's mail. When the
queue holds nothing else, that claim finds nothing, and asking again before anything changed
would find nothing again: with four workers draining one big domain it was one wasted claim a
delivery, a tenth of PostgreSQL's work a message. So the worker does not ask again, with the
same or more left out, for ``pause`` seconds (its poll interval), unless new mail is announced
(``forget``: the store's wake-up). Leaving fewer out (a delivery ended, its slots are free)
asks at once. Mail of another domain that becomes due meanwhile waits at most ``pause``,
as it would for a lost wake-up.
"""

from __future__ import annotations

import threading
from collections.abc import Collection

__all__ = ["LeftOut"]


class LeftOut:
    def __init__(self, pause: float) -> None:
        self.pause = pause
        self._domains: frozenset[str] = frozenset()
        self._mailers: frozenset[str] = frozenset()
        self._until = 0.0
        self._lock = threading.Lock()  # forget() comes from the store's listener thread

    def found_nothing(self, domains: Collection[str], mailers: Collection[str], now: float) -> None:
        """A claim leaving ``domains`` and ``mailers`` out found nothing at ``now``."""
        if domains or mailers:
            with self._lock:
                self._domains, self._mailers = frozenset(domains), frozenset(mailers)
                self._until = now + self.pause

    def wait(self, domains: Collection[str], mailers: Collection[str], now: float) -> float:
        """How long a claim leaving these out would surely find nothing (0: claim now)."""
        with self._lock:
            if now >= self._until or not (domains or mailers):
                return 0.0
            if self._domains <= set(domains) and self._mailers <= set(mailers):
                return self._until - now
            return 0.0

    def forget(self) -> None:
        """New mail: the next claim asks."""
        with self._lock:
            self._until = 0.0
