"""Caps on connections in use: per destination domain (Postfix's default: 20) and per mailer.

Postfix counts a delivery as one connection busy with mail for a destination. mailout
pipelines many messages on a connection, so a delivery here is one connection carrying a
domain's mail: a batch of ``n`` messages for a domain on a mailer that spreads ``per
connection`` messages over up to ``connections`` connections takes ``min(connections,
ceil(n / per_connection))`` of the domain's slots while it runs. A mailer's cap
(``EMAIL_QUEUE_CONNECTIONS``: a provider's limit on parallel connections) counts the
connections the whole delivery uses the same way. A message's domain is that of its first
recipient.

When a cap leaves fewer slots free than a delivery would use, the delivery is narrowed: it
goes over the connections that are free, in parts of ``width x per_connection`` messages, one
after another (a transport uses ``ceil(n / per_connection)`` connections for ``n``). Only the
mail of a domain or mailer with no slot free at all waits, in the worker that claimed it
(``admission.py``; back to the queue unattempted after ``lease / 2``), and those are left out
of the next claims until a delivery finishes (``leftout.py``: such a claim that found
nothing is not repeated at once). (Giving back whatever did not fit, as this did before,
made busy workers claim, give back and claim the same messages again: with four workers on
one domain a quarter of all claims came back, and PostgreSQL's work a message doubled.)

``LocalCaps`` counts in this process (the SQLite and memory storages); the PostgreSQL storage
counts in the database, so the caps hold across every worker on every host
(``storage/_pgcaps.py``). Both decide with ``plan``. Connections kept open between
deliveries for reuse are not counted, as Postfix's connection cache's are not.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from mailout.queue.models import ClaimedMessage

__all__ = ["Caps", "LocalCaps", "Slots", "plan"]

#: (``"domain"`` or ``"mailer"``, name) -> how many slots.
Counts = dict[tuple[str, str], int]


@dataclass(frozen=True, slots=True)
class Slots:
    """The slots one delivery holds; ``token`` names them in a shared store (taking or giving
    back the same token twice changes nothing)."""

    counts: Counts = field(default_factory=dict)
    token: str = ""
    #: Connections the delivery may use at once (0: as many as its transport likes).
    width: int = 0


Admission = tuple[list[ClaimedMessage], list[ClaimedMessage], Slots]


class Caps(Protocol):
    def busy(self) -> tuple[set[str], set[str]]:
        """Domains and mailers with no slot left: the next claim skips their mail."""
        ...

    def admit(
        self,
        mailer: str,
        messages: Sequence[ClaimedMessage],
        connections: int,
        per_connection: float,
    ) -> Admission:
        """Split ``messages`` (of ``mailer``) into those that may go now and those over a
        cap; return the slots taken (give them back with ``done``)."""
        ...

    def done(self, slots: Slots) -> None: ...


def plan(
    mailer: str,
    messages: Sequence[ClaimedMessage],
    connections: int,
    per_connection: float,
    room: Callable[[str, str], float],
) -> tuple[list[ClaimedMessage], list[ClaimedMessage], Counts, int]:
    """Which messages may go now (``room(kind, name)``: how many slots are free, ``inf`` for
    no cap), which go back (their domain or mailer has no slot free), the slots the delivery
    takes, and its width: the connections it may use, ``connections`` or fewer."""

    def need(count: int, width: int) -> int:
        return min(width, max(1, math.ceil(count / per_connection)))

    mailer_room = room("mailer", mailer)
    if mailer_room < 1:
        return [], list(messages), {}, 0
    width = connections if math.isinf(mailer_room) else min(connections, int(mailer_room))
    by_domain: dict[str, int] = {}
    for message in messages:
        by_domain[message.domain] = by_domain.get(message.domain, 0) + 1
    for domain in list(by_domain):
        free = room("domain", domain)
        if free < 1:
            del by_domain[domain]
        elif not math.isinf(free):
            width = min(width, int(free))
    admitted: list[ClaimedMessage] = []
    refused: list[ClaimedMessage] = []
    for message in messages:
        (admitted if message.domain in by_domain else refused).append(message)
    if not admitted:
        return [], refused, {}, 0
    width = max(1, width)
    slots: Counts = {("domain", d): need(count, width) for d, count in by_domain.items()}
    if not math.isinf(mailer_room):
        slots["mailer", mailer] = need(len(admitted), width)
    return admitted, refused, slots, width


class LocalCaps:
    """The caps counted in this process."""

    def __init__(self, domain_cap: int, mailer_caps: Mapping[str, int] | None = None) -> None:
        self.domain_cap = domain_cap
        self.mailer_caps = dict(mailer_caps or {})
        self._used: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    def cap(self, kind: str, name: str) -> float:
        if kind == "domain":
            return self.domain_cap
        found = self.mailer_caps.get(name, self.mailer_caps.get("*"))
        return math.inf if found is None else found

    def busy(self) -> tuple[set[str], set[str]]:
        with self._lock:
            full = {key for key, used in self._used.items() if used >= self.cap(*key)}
        return {n for k, n in full if k == "domain"}, {n for k, n in full if k == "mailer"}

    def admit(
        self,
        mailer: str,
        messages: Sequence[ClaimedMessage],
        connections: int,
        per_connection: float,
    ) -> Admission:
        with self._lock:
            admitted, refused, slots, width = plan(
                mailer,
                messages,
                connections,
                per_connection,
                lambda kind, name: self.cap(kind, name) - self._used[kind, name],
            )
            self._used.update(slots)
        return admitted, refused, Slots(slots, width=width)

    def done(self, slots: Slots) -> None:
        with self._lock:
            for key, count in slots.counts.items():
                self._used[key] -= count
                if self._used[key] <= 0:
                    del self._used[key]
