"""The worker: claim due mail under a lease, deliver it batch by batch, record every outcome.

One loop claims (fairly, within rate limits and the per-domain cap) and hands each mailer's
share of a claim to a delivery thread (``concurrency`` of them) as far as ``admission.py``
lets it start (deliveries of one mailer at once, connection slots; the rest waits in the
worker, and a mailer at its limit gets one batch claimed ahead); a heartbeat thread renews
the leases while deliveries run, so a claim outlives a slow server but not a dead worker:
when the heartbeat stops, the leases expire after ``lease`` seconds and any worker takes the
mail over.
An idle worker sleeps up to ``poll_interval``; a store that can tell when mail arrives
(PostgreSQL's NOTIFY: ``Storage.subscribe``) wakes it sooner. The caps on connections per
domain and per mailer come from the store (``Storage.caps``): counted in this process, or,
on PostgreSQL, across every worker.

SIGTERM/SIGINT stop the claiming; deliveries in flight finish and are recorded; claimed mail
not yet started is given back; the worker exits 0. A second signal exits at once (its mail is
retried after the lease). If the loop itself fails (the store cannot be written, a bug), the
worker stops and ``run()`` returns 1, so a supervisor restarts it instead of it idling.
"""

from __future__ import annotations

import concurrent.futures as cf
import inspect
import logging
import os
import random
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from mailout.queue.admission import Admission, Start
from mailout.queue.delivery import Deliverer
from mailout.queue.hooks import Hooks
from mailout.queue.leftout import LeftOut
from mailout.queue.mailer import build_mailer
from mailout.queue.models import ClaimedMessage, Report, WorkerInfo
from mailout.queue.options import WorkerOptions
from mailout.queue.policy import RetryPolicy
from mailout.queue.report import Reporter
from mailout.queue.storage import Storage
from mailout.queue.transport import Transports
from mailout.smtp._switching import quick_switches

if TYPE_CHECKING:
    from mailout.backends.base import BaseEmailBackend

__all__ = ["Worker", "WorkerOptions"]

log = logging.getLogger("mailout.queue")


@dataclass
class _Totals:
    sent: int = 0
    deferred: int = 0
    failed: int = 0

    def add(self, reports: list[Report]) -> None:
        for report in reports:
            event = report.outcome.event
            if event == "sent":
                self.sent += 1
            elif event == "deferred":
                self.deferred += 1
            else:
                self.failed += 1


class Worker:
    """Drains a store. ``run()`` until stopped, or ``run(once=True)`` for what is due now."""

    def __init__(
        self,
        storage: Storage,
        *,
        options: WorkerOptions | None = None,
        policy: RetryPolicy | None = None,
        hooks: Hooks | None = None,
        reporter: Reporter | None = None,
        clock: Callable[[], float] = time.time,
        draw: Callable[[], float] = random.random,
        sleep: Callable[[float], object] | None = None,
        mailer_factory: Callable[[str], BaseEmailBackend] = build_mailer,
    ) -> None:
        self.storage = storage
        self.options = options or WorkerOptions.from_settings()
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.reporter = reporter or Reporter()
        self.deliverer = Deliverer(
            storage,
            self.id,
            policy or RetryPolicy.from_settings(),
            hooks if hooks is not None else Hooks.from_settings(),
            self.reporter,
            self.options.keep_body,
            clock,
            draw,
        )
        self._clock = clock
        self._stop = threading.Event()
        # Set by stop() and by the store's wake-ups (new mail): ends the loop's sleep at once.
        self._wake = threading.Event()
        self._sleep = sleep or self._nap
        self._caps = storage.caps(
            worker=self.id,
            domain_cap=self.options.domain_concurrency,
            mailer_caps=self.options.connections,
            lease=self.options.lease,
            clock=clock,
        )
        self._transports = Transports(mailer_factory)
        self._lock = threading.Lock()
        self._inflight: dict[cf.Future[list[Report]], Start] = {}
        # What may start now; claimed mail that waits for a slot or its mailer's turn.
        self._admission = Admission(
            storage=storage,
            worker=self.id,
            caps=self._caps,
            shape=self._transports.shape,
            mailer_concurrency=self.options.mailer_concurrency,
            concurrency=self.options.concurrency,
            patience=max(1.0, self.options.lease / 2),
            clock=clock,
        )
        # A claim that left busy domains or mailers out and found nothing (leftout.py).
        self._left_out = LeftOut(pause=self.options.poll_interval)
        self._capped = False  # the loop's last look at the caps found one full
        self._slots_freed = 0  # slots given back elsewhere, as the store announced them
        self._signalled: int | None = None
        self.totals = _Totals()
        self.started_at = clock()
        self.fatal: BaseException | None = None

    # -- control ---------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop claiming; deliveries in flight finish (thread-safe, signal-safe)."""
        self._stop.set()
        self._wake.set()

    def wake(self) -> None:
        """Mail may be due: end the loop's sleep now (the store calls this on new mail)."""
        self._left_out.forget()
        self._wake.set()

    def slots_freed(self) -> None:
        """Another worker's delivery gave connection slots back: mail waiting for one may go.

        The loop is woken only if a slot can matter to it: it naps (nothing in flight), mail
        it claimed waits for a slot, or its claims leave out mail at a cap. (Otherwise each
        delivery's end anywhere made every worker read the slots and claim again for
        nothing. A delivery of its own that ended but is not reaped yet woke it already.)
        Those two facts may be a look old while the loop reads or takes slots: the count of
        slots freed tells the loop, before it waits, that some were freed meanwhile."""
        self._slots_freed += 1  # only the store's listener thread writes it
        if not self._inflight or self._capped or self._admission.waiting_for_slots():
            self._wake.set()

    def _freed_since(self, count: int) -> bool:
        """Slots were given back elsewhere since ``count`` was read, and this pass found mail
        they can matter to (at a cap, or waiting for a slot): slots_freed() may have judged
        from the look before, and not woken the loop."""
        return self._slots_freed != count and (self._capped or self._admission.waiting_for_slots())

    def _nap(self, seconds: float) -> None:
        self._wake.wait(seconds)
        self._wake.clear()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self, *, once: bool = False, handle_signals: bool = True) -> int:
        """Deliver until stopped (or, with ``once``, until nothing due now is left and every
        delivery is recorded). Returns the exit status: 0, or 1 if the loop failed."""
        restore = self._install_signals() if handle_signals else None
        executor = cf.ThreadPoolExecutor(self.options.concurrency, "mailout-queue-delivery")
        heartbeat = threading.Thread(
            target=self._heartbeat, name="mailout-queue-heartbeat", daemon=True
        )
        self.reporter.event(
            "worker-started",
            worker=self.id,
            store=self.storage.name,
            batch=self.options.batch,
            concurrency=self.options.concurrency,
            lease=self.options.lease,
        )
        status = 0
        unsubscribe = None
        try:
            self.storage.heartbeat(self._info(), lease=self.options.lease, now=self._clock())
            heartbeat.start()
            if not once:
                unsubscribe = _subscribe(self.storage, self.wake, self.slots_freed)
            # Many threads wait on sockets here (SMTP connections, the store's replies, the
            # committer): one that a reply woke takes the GIL within 0.5 ms, not 5 ms.
            with quick_switches():
                self._loop(executor, once)
        except Exception as exc:
            self.fatal = exc
            log.exception("the queue worker failed")
            self.reporter.event("worker-failed", level=logging.ERROR, error=str(exc))
            status = 1
        finally:
            self._stop.set()
            if unsubscribe is not None:
                unsubscribe()
            status = max(status, self._finish(executor))
            if heartbeat.is_alive():
                heartbeat.join()
            if restore is not None:
                restore()
        return status

    # -- the loop ----------------------------------------------------------------------------

    def _loop(self, executor: cf.ThreadPoolExecutor, once: bool) -> None:
        next_expiry = next_status = 0.0
        idle_since: float | None = None
        while not self._stop.is_set():
            if self._signalled is not None:
                self.reporter.event(
                    "worker-stopping",
                    signal=signal.Signals(self._signalled).name,
                    detail="finishing deliveries in flight; signal again to exit at once",
                )
                return
            self._reap()
            now = self._clock()
            if self.reporter.wants_status and now >= next_status:
                stats = self.storage.stats(now=now, failures=0)
                self.reporter.status({str(k): v for k, v in stats.counts.items()})
                next_status = now + 5.0
            if now >= next_expiry:
                released = self.storage.release_expired(now=now)
                if released:  # mail to claim again, announced by no store
                    self._left_out.forget()
                    self.reporter.event("leases-expired", level=logging.WARNING, count=released)
                next_expiry = now + max(0.5, min(self.options.lease / 2, 30.0))
            self._admission.give_back_stale()
            if len(self._inflight) >= self.options.concurrency:
                self._wait_for_delivery(self.options.poll_interval)
                continue
            slots_freed = self._slots_freed  # before this pass looks at the slots
            if self._admission.waiting:
                self._retry_waiting(executor)
                if len(self._inflight) >= self.options.concurrency:
                    continue
            busy_domains, busy_mailers = self._caps.busy()
            self._capped = bool(busy_domains or busy_mailers)
            busy_mailers = busy_mailers | self._admission.mailers_with_enough()
            pause = self._left_out.wait(busy_domains, busy_mailers, now)
            if pause:  # only mail of busy domains was due a moment ago: wait for a slot
                if self._freed_since(slots_freed):
                    continue  # some were freed while this pass looked: look again
                if self._inflight:
                    self._wait_for_delivery(pause)
                else:
                    self._sleep(pause)
                continue
            news = self._left_out.news()
            claimed = self.storage.claim(
                worker=self.id,
                limit=self.options.batch,
                lease=self.options.lease,
                now=now,
                limits=self.options.limits,
                exclude_domains=busy_domains,
                exclude_mailers=busy_mailers,
            )
            if claimed:
                idle_since = None
                self._dispatch(executor, claimed)
                continue
            self._left_out.found_nothing(busy_domains, busy_mailers, now, news=news)
            if self._left_out.news() != news or self._freed_since(slots_freed):
                continue  # mail announced or slots freed while this pass looked: again
            if self._inflight:
                self._wait_for_delivery(self.options.poll_interval)
                continue
            if self._admission.waiting:  # for slots other workers hold: their release wakes us
                self._sleep(self.options.poll_interval)
                continue
            due = self.storage.next_due(now=now, exclude_mailers=busy_mailers)
            if once and (due is None or due > now):
                return
            if due is not None and due <= now:  # due, but held back by rate limits
                idle_since = now if idle_since is None else idle_since
                if once and now - idle_since > self._throttle_patience():
                    self.reporter.event("once-done", detail="due mail is held back by rate limits")
                    return
                self._sleep(self._throttle_wait())
                continue
            wait = (
                self.options.poll_interval
                if due is None
                else min(due - now, self.options.poll_interval)
            )
            self._sleep(max(0.01, wait))

    def _throttle_wait(self) -> float:
        rates = [limit.rate.per_second for limit in self.options.limits.values() if limit.rate]
        return min([self.options.poll_interval, *(1 / r for r in rates)])

    def _throttle_patience(self) -> float:
        return 3 * self._throttle_wait() + 1.0

    def _dispatch(self, executor: cf.ThreadPoolExecutor, claimed: list[ClaimedMessage]) -> None:
        groups: dict[str, list[ClaimedMessage]] = {}
        for message in claimed:
            groups.setdefault(message.mailer, []).append(message)
        now = self._clock()
        for mailer, messages in groups.items():
            self._admit(executor, mailer, messages, since=now)

    def _admit(
        self,
        executor: cf.ThreadPoolExecutor,
        mailer: str,
        messages: list[ClaimedMessage],
        since: float,
    ) -> None:
        start = self._admission.admit(mailer, messages, since)
        if start is not None:
            self._begin(executor, start)

    def _begin(self, executor: cf.ThreadPoolExecutor, start: Start) -> None:
        # If this raises (no thread can be started), the job may still be queued and run at
        # shutdown: nothing is undone here; the loop stops and the leases settle the rest.
        future = executor.submit(self._deliver, start)
        with self._lock:
            self._inflight[future] = start
        # A delivery that ends wakes the loop as new mail does (_wait_for_delivery).
        future.add_done_callback(lambda _: self._wake.set())

    def _retry_waiting(self, executor: cf.ThreadPoolExecutor) -> None:
        self._admission.retry_waiting(
            room=lambda: len(self._inflight) < self.options.concurrency,
            begin=lambda start: self._begin(executor, start),
        )

    def _deliver(self, start: Start) -> list[Report]:
        mailer, messages, part = start.mailer, start.messages, start.part
        try:
            try:
                transport = self._transports.get(mailer)
            except Exception as exc:  # MAILERS changed, an import fails: retry later
                log.error("mailer %r cannot be built: %s", mailer, exc)
                reports = self.deliverer.defer_all(messages, exc)
            else:
                reports = []
                for first in range(0, len(messages), part):
                    if first and (self._stop.is_set() or self._signalled is not None):
                        # Stopping: the parts not started go back, as undelivered claims do.
                        rest = [m.id for m in messages[first:]]
                        self.storage.release(rest, worker=self.id, now=self._clock())
                        break
                    reports += self.deliverer.deliver(transport, messages[first : first + part])
            self._note_relay_down(mailer, reports)
            with self._lock:
                self.totals.add(reports)
            return reports
        finally:
            self._admission.finished(start)

    def _note_relay_down(self, mailer: str, reports: list[Report]) -> None:
        texts = {r.outcome.summary for r in reports if r.outcome.event == "deferred"}
        if (
            len(reports) > 1
            and len(texts) == 1
            and all(r.outcome.event == "deferred" for r in reports)
        ):
            self.reporter.event(
                "batch-deferred",
                level=logging.WARNING,
                mailer=mailer,
                count=len(reports),
                error=texts.pop(),
            )

    def _reap(self) -> None:
        with self._lock:
            done = [f for f in self._inflight if f.done()]
            for future in done:
                del self._inflight[future]
        for future in done:
            future.result()  # a delivery that raised (the store failed) ends the loop

    def _wait_for_delivery(self, timeout: float) -> None:
        """Until a delivery ends, mail is announced, slots are given back or the worker
        stops (each sets ``_wake``), or ``timeout``: a delivery thread left free while
        others deliver hears of new mail at once, not when some delivery ends."""
        if self._inflight:
            self._wake.wait(timeout)
            self._wake.clear()

    # -- heartbeat and shutdown --------------------------------------------------------------

    def _info(self) -> WorkerInfo:
        with self._lock:
            in_flight = sum(len(start.messages) for start in self._inflight.values())
            totals = replace(self.totals)
        in_flight += self._admission.waiting.count()
        return WorkerInfo(
            self.id,
            socket.gethostname(),
            os.getpid(),
            self.started_at,
            self._clock(),
            in_flight,
            totals.sent,
            totals.deferred,
            totals.failed,
        )

    def _heartbeat(self) -> None:
        interval = max(0.05, self.options.lease / 3)
        while not self._stop.wait(interval):
            try:
                self.storage.heartbeat(self._info(), lease=self.options.lease, now=self._clock())
            except Exception as exc:
                # Leases that cannot be renewed will expire under deliveries in flight: stop.
                log.error("the queue worker's heartbeat failed: %s", exc)
                self.fatal = exc
                self._stop.set()
                return

    def _finish(self, executor: cf.ThreadPoolExecutor) -> int:
        status = 0
        with self._lock:
            inflight = dict(self._inflight)
        # Claimed but never started, or still waiting for a connection slot: given back. (If
        # the store is what failed, they come back when their leases expire instead.)
        cancelled = [start for future, start in inflight.items() if future.cancel()]
        unstarted = [[m.id for m in start.messages] for start in cancelled]
        unstarted += self._admission.waiting.clear()
        for ids in unstarted:
            try:
                self.storage.release(ids, worker=self.id, now=self._clock())
            except Exception as error:
                log.warning("could not give back %d claimed messages: %s", len(ids), error)
        # Their _deliver never runs to give their connection slots back: other workers
        # would wait for them until this worker's registration is gone.
        for start in cancelled:
            try:
                self._admission.finished(start)
            except Exception as error:
                log.warning("could not give back connection slots: %s", error)
        executor.shutdown(wait=True)
        for future in inflight:
            if not future.cancelled() and future.exception() is not None:
                exc = future.exception()
                log.error("a delivery failed: %s", exc)
                self.fatal = self.fatal or exc
                status = 1
        self._transports.close_all()
        if self.fatal is not None:
            status = 1
        try:
            self.storage.unregister(self.id)
        except Exception as exc:
            log.warning("could not unregister the worker: %s", exc)
        self.reporter.event(
            "worker-stopped",
            worker=self.id,
            sent=self.totals.sent,
            deferred=self.totals.deferred,
            failed=self.totals.failed,
            status=status,
        )
        self.reporter.close()
        return status

    def _install_signals(self) -> Callable[[], None] | None:
        if threading.current_thread() is not threading.main_thread():
            return None
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

        def handler(signum: int, frame: object) -> None:
            # Only a flag: the interrupted thread may hold any lock (a logger's, an Event's).
            # The loop sees it within poll_interval and stops from ordinary code.
            if self._signalled is not None:  # the second signal: leave now, leases expire
                os._exit(1)
            self._signalled = signum

        for sig in previous:
            signal.signal(sig, handler)

        def restore() -> None:
            for sig, old in previous.items():
                signal.signal(sig, old)

        return restore


def _subscribe(
    storage: Storage, wake: Callable[[], None], slots_freed: Callable[[], None]
) -> Callable[[], None] | None:
    """``storage.subscribe``, telling slots given back apart from new mail where the storage
    can (a storage written for an earlier mailout takes ``wake`` alone: then both wake)."""
    try:
        takes = "slots_freed" in inspect.signature(storage.subscribe).parameters
    except (TypeError, ValueError):
        takes = False
    if takes:
        return storage.subscribe(wake, slots_freed=slots_freed)
    return storage.subscribe(wake)
