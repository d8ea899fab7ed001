"""The in-memory storage: the same contract as SQLite, for tests and throwaway queues.

``memory:`` names one queue shared by everything in the process (the backend that enqueues
and the worker that delivers see the same messages); ``memory:NAME`` names another. Nothing
survives the process: use it where losing queued mail on exit is acceptable.
"""

from __future__ import annotations

import builtins
import itertools
import threading
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from mailout._canonical import CanonicalBytes, canonical, is_canonical
from mailout.exceptions import MessageNotFound
from mailout.queue.limits import Bucket, Limit
from mailout.queue.models import (
    LIVE,
    WAITING,
    ClaimedMessage,
    Event,
    MessageDetail,
    MessageSummary,
    NewMessage,
    Outcome,
    Priority,
    QueueStats,
    Selection,
    State,
    WorkerInfo,
    domain_of,
)
from mailout.queue.storage import Storage
from mailout.queue.storage._claim import apply_limits, exhausted, pick_fairly
from mailout.queue.storage._rows import events_for

__all__ = ["MemoryStorage"]


@dataclass
class _Row:
    id: int
    key: str | None
    state: State
    mailer: str
    priority: Priority
    sender: str
    recipients: tuple[str, ...]  # still to be delivered (the "pending" column of SQLite)
    envelope: tuple[str, ...]
    message_id: str
    subject: str
    size: int
    data: bytes | None
    smtputf8: bool
    eight_bit: bool
    metadata: dict[str, Any]
    created_at: float
    queued_at: float
    due_at: float
    updated_at: float
    attempts: int = 0
    delivered: int = 0
    lease_owner: str | None = None
    lease_until: float | None = None
    last_reply: str | None = None
    reason: str | None = None
    events: list[Event] = field(default_factory=list)

    def summary(self) -> MessageSummary:
        return MessageSummary(
            self.id,
            self.state,
            self.mailer,
            self.priority,
            self.sender,
            self.envelope,
            self.recipients,
            self.subject,
            self.message_id,
            self.size,
            self.created_at,
            self.queued_at,
            self.due_at,
            self.updated_at,
            self.attempts,
            self.last_reply,
            self.reason,
            self.key,
        )


class MemoryStorage(Storage):
    """A queue held in a dict, guarded by one lock."""

    _named: ClassVar[dict[str, MemoryStorage]] = {}
    _named_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, name: str = "memory:") -> None:
        self.name = name
        self._lock = threading.RLock()
        self._rows: dict[int, _Row] = {}
        self._keys: dict[str, int] = {}
        self._buckets: dict[str, Bucket] = {}
        self._workers: dict[str, WorkerInfo] = {}
        self._ids = itertools.count(1)

    @classmethod
    def from_url(cls, url: str, *, setting: str = "EMAIL_QUEUE_URL") -> MemoryStorage:
        """``memory:`` or ``memory:NAME``: the same object for the same URL in one process."""
        with cls._named_lock:
            storage = cls._named.get(url)
            if storage is None:
                storage = cls._named[url] = cls(url)
            return storage

    @classmethod
    def forget_all(cls) -> None:
        """Drop every named in-memory queue (between tests)."""
        with cls._named_lock:
            cls._named.clear()

    def __repr__(self) -> str:
        return f"<MemoryStorage {self.name}>"

    # -- producers -------------------------------------------------------------------------

    def enqueue(self, messages: Iterable[NewMessage], *, now: float) -> list[int]:
        with self._lock:
            rows: list[_Row] = []
            keys: dict[str, int] = {}
            ids = []
            for m in messages:  # consumed fully before anything is stored: all or nothing
                known = self._keys.get(m.key) if m.key else None
                if m.key and known is None:
                    known = keys.get(m.key)
                if known is not None:
                    ids.append(known)
                    continue
                row = _Row(
                    id=next(self._ids),
                    key=m.key,
                    state=State.QUEUED,
                    mailer=m.mailer,
                    priority=m.priority,
                    sender=m.sender,
                    recipients=tuple(m.recipients),
                    envelope=tuple(m.recipients),
                    message_id=m.message_id,
                    subject=m.subject,
                    size=len(m.data),
                    # As the other stores read back a body stored canonical (mailout._canonical).
                    data=_as_stored(m.data),
                    smtputf8=m.smtputf8,
                    eight_bit=m.eight_bit,
                    metadata=dict(m.metadata),
                    created_at=now,
                    queued_at=now,
                    due_at=now if m.not_before is None else m.not_before,
                    updated_at=now,
                )
                rows.append(row)
                ids.append(row.id)
                if m.key:
                    keys[m.key] = row.id
            self._rows.update((row.id, row) for row in rows)
            self._keys.update(keys)
            return ids

    # -- workers ---------------------------------------------------------------------------

    def claim(
        self,
        *,
        worker: str,
        limit: int,
        lease: float,
        now: float,
        limits: Mapping[str, Limit] | None = None,
        exclude_domains: Collection[str] = (),
        exclude_mailers: Collection[str] = (),
    ) -> list[ClaimedMessage]:
        limits = limits or {}
        with self._lock:
            skip = {*exhausted(limits, self._buckets, now), *exclude_mailers}
            domains = set(exclude_domains)

            def candidates(state: State, priority: Priority, count: int) -> list[tuple[int, str]]:
                due = [  # the whole queue, always: no window to save reads in memory
                    r
                    for r in self._rows.values()
                    if r.state is state
                    and r.priority is priority
                    and r.due_at <= now
                    and r.mailer not in skip
                    and domain_of(r.recipients[0]) not in domains
                ]
                due.sort(key=lambda r: (r.due_at, r.id))
                return [(r.id, r.mailer) for r in due[:count]]

            ids, changed = apply_limits(pick_fairly(candidates, limit), limits, self._buckets, now)
            self._buckets.update(changed)
            claimed = []
            for id_ in ids:
                row = self._rows[id_]
                row.state, row.lease_owner, row.lease_until = State.SENDING, worker, now + lease
                row.attempts += 1
                row.updated_at = now
                claimed.append(self._claimed(row))
            return claimed

    def _claimed(self, row: _Row) -> ClaimedMessage:
        return ClaimedMessage(
            id=row.id,
            attempt=row.attempts,
            mailer=row.mailer,
            priority=row.priority,
            sender=row.sender,
            recipients=row.recipients,
            data=row.data or b"",
            message_id=row.message_id,
            created_at=row.created_at,
            queued_at=row.queued_at,
            delivered=row.delivered,
            smtputf8=row.smtputf8,
            eight_bit=row.eight_bit,
            metadata=dict(row.metadata),
            corrupt=None if row.data else f"message {row.id} in {self.name} has no body",
        )

    def heartbeat(self, info: WorkerInfo, *, lease: float, now: float) -> int:
        with self._lock:
            known = self._workers.get(info.id)
            self._workers[info.id] = (
                info if known is None else replace(info, started_at=known.started_at)
            )
            stale = now - max(3600.0, 10 * lease)
            for name in [w.id for w in self._workers.values() if w.seen_at < stale]:
                del self._workers[name]
            held = [
                r
                for r in self._rows.values()
                if r.state is State.SENDING and r.lease_owner == info.id
            ]
            for row in held:
                row.lease_until = now + lease
            return len(held)

    def record(
        self, outcomes: Sequence[Outcome], *, worker: str, now: float, keep_body: bool = True
    ) -> list[bool]:
        done = []
        with self._lock:
            for outcome in outcomes:
                row = self._rows.get(outcome.id)
                ok = (
                    row is not None
                    and row.state is State.SENDING
                    and row.lease_owner == worker
                    and row.attempts == outcome.attempt
                )
                done.append(ok)
                if not ok or row is None:
                    continue
                row.state = outcome.state
                row.recipients = outcome.recipients
                if outcome.due_at is not None:
                    row.due_at = outcome.due_at
                row.delivered += outcome.delivered
                row.last_reply, row.reason = outcome.summary[:1000], outcome.reason
                row.lease_owner = row.lease_until = None
                row.updated_at = now
                if not keep_body and outcome.state is State.SENT:
                    row.data = None
                row.events.extend(events_for(outcome, now))
        return done

    def release(self, ids: Sequence[int], *, worker: str, now: float) -> int:
        count = 0
        with self._lock:
            for id_ in ids:
                row = self._rows.get(id_)
                if row and row.state is State.SENDING and row.lease_owner == worker:
                    row.state = State.DEFERRED if row.attempts > 1 else State.QUEUED
                    row.attempts -= 1
                    row.lease_owner = row.lease_until = None
                    row.updated_at = now
                    count += 1
        return count

    def release_expired(self, *, now: float) -> int:
        count = 0
        with self._lock:
            for row in self._rows.values():
                if row.state is State.SENDING and (row.lease_until or 0) < now:
                    text = f"the lease of worker {row.lease_owner} expired"
                    row.events.append(Event(row.id, now, row.attempts, "lease-expired", text=text))
                    row.state, row.due_at, row.updated_at = State.DEFERRED, now, now
                    row.lease_owner = row.lease_until = None
                    count += 1
        return count

    def unregister(self, worker: str) -> None:
        with self._lock:
            self._workers.pop(worker, None)

    def next_due(self, *, now: float, exclude_mailers: Collection[str] = ()) -> float | None:
        with self._lock:
            due = [
                r.due_at
                for r in self._rows.values()
                if r.state in WAITING and r.mailer not in exclude_mailers
            ]
        return min(due, default=None)

    def bucket(self, name: str) -> Bucket | None:
        with self._lock:
            return self._buckets.get(name)

    # -- operators -------------------------------------------------------------------------

    def stats(self, *, now: float, failures: int = 5) -> QueueStats:
        with self._lock:
            rows = list(self._rows.values())
            workers = sorted(self._workers.values(), key=lambda w: w.started_at)
        counts = dict.fromkeys(State, 0)
        by_mailer: dict[str, dict[State, int]] = {}
        for row in rows:
            counts[row.state] += 1
            if row.state in LIVE:
                per = by_mailer.setdefault(row.mailer, {})
                per[row.state] = per.get(row.state, 0) + 1
        waiting = [r.due_at for r in rows if r.state in WAITING]
        retries = [r.due_at for r in rows if r.state is State.DEFERRED and r.due_at > now]
        failed = sorted(
            (r for r in rows if r.state is State.FAILED), key=lambda r: r.updated_at, reverse=True
        )
        return QueueStats(
            counts=counts,
            oldest_due=min(waiting, default=None),
            next_retry=min(retries, default=None),
            recent_failures=tuple(r.summary() for r in failed[:failures]),
            workers=tuple(workers),
            by_mailer=by_mailer,
        )

    def list(self, *, state: State | None = None, limit: int = 50) -> list[MessageSummary]:
        with self._lock:
            rows = list(self._rows.values())
        if state is None:
            rows.sort(key=lambda r: r.id, reverse=True)
        else:
            rows = [r for r in rows if r.state is state]
            rows.sort(key=lambda r: (r.updated_at, r.id), reverse=True)
        return [r.summary() for r in rows[:limit]]

    def get(self, id: int) -> MessageDetail:
        with self._lock:
            row = self._rows.get(id)
            if row is None:
                raise MessageNotFound(f"no message {id} in the queue {self.name}")
            return MessageDetail(
                row.summary(),
                dict(row.metadata),
                row.data,
                tuple(row.events),
                row.lease_owner,
                row.lease_until,
            )

    def _operate(
        self, selection: Selection, states: Collection[State], kind: str, now: float
    ) -> builtins.list[_Row]:
        with self._lock:
            if selection == "ALL":
                rows = [r for r in self._rows.values() if r.state in states]
            else:
                found = (self._rows.get(int(i)) for i in dict.fromkeys(selection))
                rows = [r for r in found if r is not None and r.state in states]
            for row in rows:
                row.updated_at = now
                text = f"{kind} by an operator"
                row.events.append(Event(row.id, now, row.attempts, kind, text=text))
            return rows

    def hold(self, selection: Selection, *, now: float) -> int:
        with self._lock:
            rows = self._operate(selection, WAITING, "held", now)
            for row in rows:
                row.state = State.HELD
            return len(rows)

    def unhold(self, selection: Selection, *, now: float) -> int:
        with self._lock:
            rows = self._operate(selection, (State.HELD,), "released", now)
            for row in rows:
                row.state = State.DEFERRED if row.attempts else State.QUEUED
            return len(rows)

    def expire(self, selection: Selection, *, now: float) -> int:
        with self._lock:
            rows = self._operate(selection, (*WAITING, State.HELD), "expired", now)
            for row in rows:
                row.state, row.reason = State.FAILED, "expired"
                row.last_reply = "expired by an operator"
            return len(rows)

    def retry(self, selection: Selection, *, now: float, failed_only: bool = False) -> int:
        states = (State.FAILED,) if failed_only else (State.DEFERRED, State.FAILED)
        with self._lock:
            rows = self._operate("ALL" if failed_only else selection, states, "retried", now)
            for row in rows:
                if row.state is State.FAILED:
                    row.queued_at = now
                row.state = State.DEFERRED if row.attempts else State.QUEUED
                row.due_at, row.reason = now, None
            return len(rows)

    def purge(self, states: Collection[State], *, before: float, batch: int = 1000) -> int:
        with self._lock:
            doomed = [r for r in self._rows.values() if r.state in states and r.updated_at < before]
            for row in doomed:
                del self._rows[row.id]
                if row.key is not None:
                    self._keys.pop(row.key, None)
            return len(doomed)


def _as_stored(data: bytes) -> bytes:
    """``data`` as the other stores give it back: marked if canonical (kept if it already is)."""
    if type(data) is CanonicalBytes or not is_canonical(data):
        return data
    return canonical(data)
