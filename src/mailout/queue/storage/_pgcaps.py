"""Caps on connections in use, counted in PostgreSQL so that they hold across every worker.

Each delivery takes its slots (per mailer, per destination domain) in one short transaction
that holds the advisory locks of the names it needs, and gives them back when it is done;
its slots are rows named by a token of its own, so that taking or giving them back twice
(after a lost connection) changes nothing.
Slots live under the worker's lease, renewed by its heartbeat: a dead worker's slots stop
counting once the lease runs out, as its messages come back.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from mailout.queue.caps import Admission, Counts, Slots, plan
from mailout.queue.models import ClaimedMessage
from mailout.queue.sql import load
from mailout.queue.storage._pgconn import SLOTS_FREED

if TYPE_CHECKING:
    from mailout.queue.storage.postgres import PostgresStorage

__all__ = ["SharedCaps"]

Q = load("postgres")


class SharedCaps:
    def __init__(
        self,
        storage: PostgresStorage,
        worker: str,
        domain_cap: int,
        mailer_caps: Mapping[str, int],
        lease: float,
        clock: Callable[[], float],
    ) -> None:
        self.storage = storage
        self.worker = worker
        self.domain_cap = domain_cap
        self.mailer_caps = dict(mailer_caps)
        self.lease = lease
        self.clock = clock

    def cap(self, kind: str, name: str) -> float:
        if kind == "domain":
            return self.domain_cap
        found = self.mailer_caps.get(name, self.mailer_caps.get("*"))
        return math.inf if found is None else found

    def busy(self) -> tuple[set[str], set[str]]:
        least = min([self.domain_cap, *self.mailer_caps.values()])

        def read(cur: Any) -> list[tuple[str, str, int]]:
            cur.execute(Q["busy_slots"], {"now": self.clock(), "least": least})
            return [(str(k), str(n), int(u)) for k, n, u in cur.fetchall()]

        rows = self.storage._read("reading connection slots", read)
        full = {(k, n) for k, n, used in rows if used >= self.cap(k, n)}
        return {n for k, n in full if k == "domain"}, {n for k, n in full if k == "mailer"}

    def admit(
        self,
        mailer: str,
        messages: Sequence[ClaimedMessage],
        connections: int,
        per_connection: float,
    ) -> Admission:
        keys = sorted({f"domain:{m.domain}" for m in messages} | {f"mailer:{mailer}"})
        token = uuid.uuid4().hex

        def take(cur: Any) -> Admission:
            now = self.clock()
            cur.execute(Q["lock_slots"], {"keys": keys})
            cur.fetchall()
            cur.execute(Q["slots_used"], {"now": now, "keys": keys})
            used = {(str(k), str(n)): int(u) for k, n, u in cur.fetchall()}
            admitted, refused, counts, width = plan(
                mailer,
                messages,
                connections,
                per_connection,
                lambda kind, name: self.cap(kind, name) - used.get((kind, name), 0),
            )
            if counts:
                cur.execute(
                    Q["take_slots"],
                    {
                        **_columns(counts),
                        "worker": self.worker,
                        "holder": token,
                        "until": now + self.lease,
                    },
                )
            return admitted, refused, Slots(counts, token, width)

        return self.storage._book("taking connection slots", take)  # type: ignore[no-any-return]

    def done(self, slots: Slots) -> None:
        if not slots.counts:
            return

        def give(cur: Any) -> None:
            # A worker waiting for a slot may claim now (the payload: no new mail).
            params = {
                "holder": slots.token,
                "channel": self.storage.channel,
                "payload": SLOTS_FREED,
                "notify": self.storage.url.notify,
            }
            cur.execute(Q["give_slots"], params)

        self.storage._book("giving back connection slots", give)


def _columns(slots: Counts) -> dict[str, list[Any]]:
    return {
        "kinds": [kind for kind, _ in slots],
        "names": [name for _, name in slots],
        "useds": list(slots.values()),
    }
