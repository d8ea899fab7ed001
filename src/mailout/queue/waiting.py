"""Claimed mail waiting in a worker for a connection slot (its domain or mailer at its cap).

It waits here, claimed and under its lease (the heartbeat renews it), rather than going back
to the queue to be claimed again, by this worker or another, only to find the same cap full.
After ``patience`` seconds (the worker's lease / 2) it goes back after all. First in, first
out. Only the worker's loop changes it; the heartbeat thread reads ``count`` (so a lock).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from mailout.queue.models import ClaimedMessage

__all__ = ["Waiting"]

#: (mailer, messages, since when they wait)
Entry = tuple[str, list[ClaimedMessage], float]


class Waiting:
    def __init__(self, patience: float) -> None:
        self.patience = patience
        self._entries: list[Entry] = []
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        return bool(self._entries)

    def patient(self, since: float, now: float) -> bool:
        """Whether mail waiting since ``since`` may wait longer."""
        return now - since < self.patience

    def add(self, mailer: str, messages: list[ClaimedMessage], since: float) -> None:
        with self._lock:
            self._entries.append((mailer, messages, since))

    def take(self) -> list[Entry]:
        """Everything, oldest first; hand back what was not let go with ``put_back``."""
        with self._lock:
            entries, self._entries = self._entries, []
        return entries

    def put_back(self, entries: Sequence[Entry]) -> None:
        """Entries taken and not let go: first in line again."""
        with self._lock:
            self._entries[:0] = entries

    def stale(self, now: float) -> list[int]:
        """Remove the mail that waited its patience out; its ids (to give back)."""
        if not self._entries:
            return []
        with self._lock:
            stale = [e for e in self._entries if not self.patient(e[2], now)]
            self._entries = [e for e in self._entries if self.patient(e[2], now)]
        return [m.id for _, messages, _ in stale for m in messages]

    def mailers(self) -> set[str]:
        """The mailers with mail waiting."""
        with self._lock:
            return {mailer for mailer, _, _ in self._entries}

    def count(self) -> int:
        with self._lock:
            return sum(len(messages) for _, messages, _ in self._entries)

    def clear(self) -> list[list[int]]:
        """Remove everything; the ids of each entry (to give back, entry by entry)."""
        return [[m.id for m in messages] for _, messages, _ in self.take()]
