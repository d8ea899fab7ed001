"""The cap on parallel deliveries per destination domain (Postfix's default: 20).

Postfix counts a delivery as one connection busy with mail for a destination. mailout
pipelines many messages on a connection, so a delivery here is one connection carrying a
domain's mail: a batch of ``n`` messages for a domain on a mailer that spreads ``per
connection`` messages over up to ``connections`` connections takes ``min(connections,
ceil(n / per_connection))`` of the domain's slots while it runs. Messages that would go over
the cap are given back to the queue unattempted, and the domains at their cap are left out
of the next claims until a delivery finishes. A message's domain is that of its first
recipient. The count is per worker process.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Sequence

from mailout.queue.models import ClaimedMessage

__all__ = ["DomainCap"]


class DomainCap:
    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._used: Counter[str] = Counter()
        self._lock = threading.Lock()

    def busy(self) -> set[str]:
        """Domains with no slot left: the next claim skips their mail."""
        with self._lock:
            return {domain for domain, used in self._used.items() if used >= self.cap}

    def admit(
        self, messages: Sequence[ClaimedMessage], connections: int, per_connection: float
    ) -> tuple[list[ClaimedMessage], list[ClaimedMessage], dict[str, int]]:
        """Split ``messages`` into those that may go now and those over the cap; return the
        slots taken (give them back with ``done``)."""
        by_domain: dict[str, list[ClaimedMessage]] = {}
        for message in messages:
            by_domain.setdefault(message.domain, []).append(message)
        admitted: list[ClaimedMessage] = []
        refused: list[ClaimedMessage] = []
        slots: dict[str, int] = {}
        with self._lock:
            for domain, found in by_domain.items():
                room = self.cap - self._used[domain]
                need = min(connections, max(1, math.ceil(len(found) / per_connection)))
                if room <= 0:
                    refused += found
                    continue
                take = len(found) if need <= room else int(room * per_connection)
                admitted += found[:take]
                refused += found[take:]
                slots[domain] = min(need, room)
                self._used[domain] += slots[domain]
        order = {m.id: i for i, m in enumerate(messages)}
        admitted.sort(key=lambda m: order[m.id])
        return admitted, refused, slots

    def done(self, slots: dict[str, int]) -> None:
        with self._lock:
            for domain, count in slots.items():
                self._used[domain] -= count
                if self._used[domain] <= 0:
                    del self._used[domain]
