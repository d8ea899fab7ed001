"""Caps on connections in use: per destination domain (Postfix's default: 20) and per mailer.

Postfix counts a delivery as one connection busy with mail for a destination. mailout
pipelines many messages on a connection, so a delivery here is one connection carrying a
domain's mail: a batch of ``n`` messages for a domain on a mailer that spreads ``per
connection`` messages over up to ``connections`` connections takes ``min(connections,
ceil(n / per_connection))`` of the domain's slots while it runs. A mailer's cap
(``EMAIL_QUEUE_CONNECTIONS``: a provider's limit on parallel connections) counts the
connections the whole delivery uses the same way. Messages that would go over a cap are given
back to the queue unattempted, and the domains and mailers at their cap are left out of the
next claims until a delivery finishes. A message's domain is that of its first recipient.

``LocalCaps`` counts in this process (the SQLite and memory storages); the PostgreSQL storage
counts in the database, so the caps hold across every worker on every host
(``storage/postgres.py``). Both decide with ``plan``. Connections kept open between
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
) -> tuple[list[ClaimedMessage], list[ClaimedMessage], Counts]:
    """Which messages fit in the free slots (``room(kind, name)``: how many are free, ``inf``
    for no cap), and the slots they take."""
    slots: Counts = {}
    allowed = list(messages)
    mailer_room = room("mailer", mailer)
    if mailer_room <= 0:
        return [], allowed, slots
    if math.isfinite(mailer_room):
        need = min(connections, max(1, math.ceil(len(allowed) / per_connection)))
        if need > mailer_room:
            allowed = allowed[: int(mailer_room * per_connection)]
    by_domain: dict[str, list[ClaimedMessage]] = {}
    for message in allowed:
        by_domain.setdefault(message.domain, []).append(message)
    admitted: list[ClaimedMessage] = []
    for domain, found in by_domain.items():
        free = room("domain", domain)
        if free <= 0:
            continue
        need = min(connections, max(1, math.ceil(len(found) / per_connection)))
        take = len(found) if need <= free else int(free * per_connection)
        admitted += found[:take]
        slots["domain", domain] = int(min(need, free))
    if admitted and math.isfinite(mailer_room):
        slots["mailer", mailer] = min(
            connections, max(1, math.ceil(len(admitted) / per_connection))
        )
    chosen = {m.id for m in admitted}
    return (
        [m for m in messages if m.id in chosen],
        [m for m in messages if m.id not in chosen],
        slots,
    )


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
            admitted, refused, slots = plan(
                mailer,
                messages,
                connections,
                per_connection,
                lambda kind, name: self.cap(kind, name) - self._used[kind, name],
            )
            self._used.update(slots)
        return admitted, refused, Slots(slots)

    def done(self, slots: Slots) -> None:
        with self._lock:
            for key, count in slots.counts.items():
                self._used[key] -= count
                if self._used[key] <= 0:
                    del self._used[key]
