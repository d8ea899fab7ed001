"""Connection pools: spread many messages over up to N SMTP connections, reuse them, retry drops.

A pool hands out batches of messages to workers, one connection each (threads for the sync
pool, tasks for the asyncio one; the sync pool never runs an event loop). A connection is
reused across calls until it has sent ``max_messages`` or lived ``max_age`` seconds. When a
connection is lost (a drop, a ``421``, a timeout), the messages that had not been sent whole
are sent again on a new connection, at most ``retries`` times. Never resent here: a message
the server refused (that answer is reported, and retrying later is the queue's job), and a
message sent whole whose final reply was lost (``DeliveryUnknownError``: the server may have
it, and a second copy is worse than a late one -- RFC 5321 §4.5.3.2.6).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from mailout.exceptions import ImproperlyConfigured, SMTPConnectError, SMTPError
from mailout.smtp._async.client import AsyncSMTPClient
from mailout.smtp._switching import quick_switches
from mailout.smtp._sync.client import SMTPClient
from mailout.smtp._work import Item, OnResults, Outcome, Work

__all__ = ["AsyncSMTPPool", "OnResults", "Outcome", "PoolOptions", "SMTPPool"]


@dataclass(frozen=True, slots=True)
class PoolOptions:
    size: int = 4  # a submission server usually allows a few connections per client
    batch_size: int = 50  # messages handed to one connection at a time
    max_messages: int = 1000  # per connection, then it is closed (servers cap this too)
    max_age: float = 300.0  # seconds a connection is reused before it is replaced
    retries: int = 2  # resends of a message whose connection was lost

    def __post_init__(self) -> None:
        for name in ("size", "batch_size", "max_messages"):
            if getattr(self, name) < 1:
                raise ImproperlyConfigured(f"pool {name} must be at least 1")
        if self.retries < 0 or self.max_age <= 0:
            raise ImproperlyConfigured("pool retries must be >= 0 and max_age > 0")


ClientT = TypeVar("ClientT", SMTPClient, AsyncSMTPClient)


@dataclass
class _Slot(Generic[ClientT]):
    """A connection with its wear, so a pool knows when to retire it."""

    client: ClientT
    born: float = field(default_factory=time.monotonic)
    sent: int = 0

    def worn(self, options: PoolOptions) -> bool:
        return self.sent >= options.max_messages or time.monotonic() - self.born > options.max_age


# Messages encoded ahead of the network at most, when items are fed while sending.
MAX_AHEAD = 1000


class SMTPPool:
    """Up to ``options.size`` connections from ``connect_client``, used from threads."""

    #: The clients' reply timeout, for callers that ask a connection for it (Django's
    #: ``backend.connection.timeout``); set by whoever builds the clients.
    timeout: float | None = None

    def __init__(self, make_client: Callable[[], SMTPClient], options: PoolOptions) -> None:
        self._make_client = make_client
        self.options = options
        self._idle: list[_Slot[SMTPClient]] = []
        self._lock = threading.Lock()
        self._closed = False

    def open(self) -> None:
        """Connect one client now, so that connection and AUTH errors surface here."""
        with self._lock:
            if self._idle:
                return
        self._checkin(self._connect())

    def _connect(self) -> _Slot[SMTPClient]:
        client = self._make_client()
        client.connect()
        return _Slot(client)

    def _checkout(self) -> _Slot[SMTPClient]:
        with self._lock:
            while self._idle:
                slot = self._idle.pop()
                if slot.client.is_connected and not slot.worn(self.options):
                    return slot
                _quietly_close(slot)
        return self._connect()

    def _checkin(self, slot: _Slot[SMTPClient]) -> None:
        with self._lock:
            if not self._closed and slot.client.is_connected and not slot.worn(self.options):
                self._idle.append(slot)
                return
        _quietly_close(slot)

    def send_many(
        self, items: Sequence[Item], *, on_results: OnResults | None = None
    ) -> list[Outcome]:
        """Send ``items``; return each one's outcome, in order.

        ``on_results(indices, outcomes)``, if given, hears each outcome as soon as it is final
        (after each burst of replies on a connection, from that connection's thread), so that
        a caller can record deliveries while the rest are still being sent. Every item is told
        exactly once, before ``send_many`` returns.
        """
        if not items:
            return []
        work = Work(len(items), self.options, items)
        work.on_results = on_results
        workers = work.workers()
        if workers == 1:
            self._worker(work)
        else:
            self._run(work, workers)
        work.fail_rest(SMTPConnectError("no connection could be made to send these"))
        return work.outcomes()

    def send_stream(self, count: int, batches: Iterable[Sequence[Item]]) -> list[Outcome]:
        """Send ``count`` items that ``batches`` yields, in order, while they are produced.

        The workers start (and connect) at once, in threads; this thread runs ``batches``
        (which may encode the messages) and hands each batch over as it comes, at most
        ``MAX_AHEAD`` items ahead of what the workers have taken. Outcomes are in item order.
        """
        if not count:
            return []
        work = Work(count, self.options, max_ahead=MAX_AHEAD)
        with quick_switches():
            return self._stream(work, batches)

    def _stream(self, work: Work, batches: Iterable[Sequence[Item]]) -> list[Outcome]:
        threads = self._start(work, work.workers())
        try:
            for batch in batches:
                work.wait_for_room(MAX_AHEAD)
                if not work.active:
                    break  # no connection could be made: the rest fails with its error
                work.feed(batch)
                # A point where a worker that this batch (or a reply) woke may take the GIL
                # at once, rather than at the next switch interval.
                time.sleep(0)
        finally:
            work.close()
            for thread in threads:
                thread.join()
        work.fail_rest(SMTPConnectError("no connection could be made to send these"))
        return work.outcomes()

    def _start(self, work: Work, workers: int) -> list[threading.Thread]:
        # Each worker gets a connection of its own: an idle one handed out here, before any
        # worker runs, or a new one it makes itself, side by side with the others. (A worker
        # that took an idle one itself could take the one a quicker sibling had already given
        # back, and the send would use fewer connections than workers.)
        idle = self._take_idle(workers)
        threads = [
            threading.Thread(
                target=self._worker,
                args=(work, idle[n] if n < len(idle) else None, True),
                name=f"mailout-smtp-{n}",
            )
            for n in range(workers)
        ]
        for thread in threads:
            thread.start()
        return threads

    def _run(self, work: Work, workers: int) -> None:
        for thread in self._start(work, workers):
            thread.join()

    def _take_idle(self, count: int) -> list[_Slot[SMTPClient]]:
        """Up to ``count`` idle connections still fit for use (worn ones are closed)."""
        taken: list[_Slot[SMTPClient]] = []
        stale: list[_Slot[SMTPClient]] = []
        with self._lock:
            while self._idle and len(taken) < count:
                slot = self._idle.pop()
                fit = slot.client.is_connected and not slot.worn(self.options)
                (taken if fit else stale).append(slot)
        for slot in stale:
            _quietly_close(slot)
        return taken

    def _worker(
        self, work: Work, given: _Slot[SMTPClient] | None = None, fresh: bool = False
    ) -> None:
        """Send batches of ``work`` on ``given``, else on an idle connection or a new one
        (``fresh``: a new one, the idle ones having been handed out by ``_start``)."""
        slot: _Slot[SMTPClient] | None = given
        try:
            # Connect at once, whatever the other workers do: the connections are made side by
            # side (while the first messages are still being encoded, when they are fed), and
            # a send uses exactly workers() of them, however the threads are scheduled.
            try:
                if slot is None:
                    slot = self._connect() if fresh else self._checkout()
            except SMTPError as exc:
                work.cannot_connect([], exc)
                return
            while batch := work.take():
                if slot is None:
                    try:
                        slot = self._checkout()
                    except SMTPError as exc:
                        work.cannot_connect(batch, exc)
                        return
                outcomes = slot.client.send_many(work.batch_items(batch))
                slot.sent += len(batch)
                lost = work.record(batch, outcomes)
                # A fatal error (a garbled reply, say) also ends the session: never reuse it.
                if lost or slot.worn(self.options) or not slot.client.is_connected:
                    _quietly_close(slot)
                    slot = None
        finally:
            if slot is not None:
                self._checkin(slot)

    def close(self) -> None:
        """QUIT every idle connection, side by side: one round trip, not one each."""
        with self._lock:
            idle, self._idle = self._idle, []
        threads = [threading.Thread(target=_quietly_close, args=(slot,)) for slot in idle[1:]]
        for thread in threads:
            thread.start()
        for slot in idle[:1]:
            _quietly_close(slot)
        for thread in threads:
            thread.join()

    @property
    def connections(self) -> int:
        return len(self._idle)


class AsyncSMTPPool:
    """Up to ``options.size`` asyncio connections; the same rules as SMTPPool."""

    timeout: float | None = None  # as SMTPPool.timeout

    def __init__(self, make_client: Callable[[], AsyncSMTPClient], options: PoolOptions) -> None:
        self._make_client = make_client
        self.options = options
        self._idle: list[_Slot[AsyncSMTPClient]] = []
        self._closed = False

    async def open(self) -> None:
        if not self._idle:
            await self._checkin(await self._connect())

    async def _connect(self) -> _Slot[AsyncSMTPClient]:
        client = self._make_client()
        await client.connect()
        return _Slot(client)

    async def _checkout(self) -> _Slot[AsyncSMTPClient]:
        while self._idle:
            slot = self._idle.pop()
            if slot.client.is_connected and not slot.worn(self.options):
                return slot
            await _aquietly_close(slot)
        return await self._connect()

    async def _checkin(self, slot: _Slot[AsyncSMTPClient]) -> None:
        if not self._closed and slot.client.is_connected and not slot.worn(self.options):
            self._idle.append(slot)
        else:
            await _aquietly_close(slot)

    async def send_many(
        self, items: Sequence[Item], *, on_results: OnResults | None = None
    ) -> list[Outcome]:
        """As ``SMTPPool.send_many``; ``on_results`` is called on the event loop's thread."""
        if not items:
            return []
        work = Work(len(items), self.options, items)
        work.on_results = on_results
        await asyncio.gather(*(self._worker(work) for _ in range(work.workers())))
        work.fail_rest(SMTPConnectError("no connection could be made to send these"))
        return work.outcomes()

    async def send_stream(
        self, count: int, batches: AsyncIterator[Sequence[Item]]
    ) -> list[Outcome]:
        """As ``SMTPPool.send_stream``: the workers (tasks) connect and send while ``batches``
        produces the items (encoding them in a thread, say)."""
        if not count:
            return []
        work = Work(count, self.options, max_ahead=MAX_AHEAD)
        work.event = asyncio.Event()
        with quick_switches():  # the encoding thread and the loop's thread share the GIL
            return await self._stream(work, batches)

    async def _stream(self, work: Work, batches: AsyncIterator[Sequence[Item]]) -> list[Outcome]:
        assert work.event is not None
        workers = [asyncio.ensure_future(self._worker(work)) for _ in range(work.workers())]
        try:
            async for batch in batches:
                while work.ahead() > MAX_AHEAD:
                    work.event.clear()
                    await work.event.wait()
                if not work.active:
                    break  # no connection could be made: the rest fails with its error
                work.feed(batch)
        finally:
            work.close()
            await asyncio.gather(*workers)
        work.fail_rest(SMTPConnectError("no connection could be made to send these"))
        return work.outcomes()

    async def _take(self, work: Work) -> list[int]:
        while not (batch := work.take_now()) and not work.done():
            assert work.event is not None
            work.event.clear()
            await work.event.wait()
        return batch

    async def _worker(self, work: Work) -> None:
        slot: _Slot[AsyncSMTPClient] | None = None
        try:
            try:  # at once, side by side: see SMTPPool._worker
                slot = await self._checkout()
            except SMTPError as exc:
                work.cannot_connect([], exc)
                return
            while batch := await self._take(work):
                if slot is None:
                    try:
                        slot = await self._checkout()
                    except SMTPError as exc:
                        work.cannot_connect(batch, exc)
                        return
                outcomes = await slot.client.send_many(work.batch_items(batch))
                slot.sent += len(batch)
                lost = work.record(batch, outcomes)
                # A fatal error (a garbled reply, say) also ends the session: never reuse it.
                if lost or slot.worn(self.options) or not slot.client.is_connected:
                    await _aquietly_close(slot)
                    slot = None
        finally:
            if slot is not None:
                await self._checkin(slot)

    async def aclose(self) -> None:
        """QUIT every idle connection, side by side."""
        idle, self._idle = self._idle, []
        await asyncio.gather(*(_aquietly_close(slot) for slot in idle))


def _quietly_close(slot: _Slot[SMTPClient]) -> None:
    # The connection is being thrown away: QUIT failing changes nothing.
    with contextlib.suppress(SMTPError, OSError):
        slot.client.close()


async def _aquietly_close(slot: _Slot[AsyncSMTPClient]) -> None:
    with contextlib.suppress(SMTPError, OSError):
        await slot.client.aclose()
