"""One delivery: a batch of claimed messages for one mailer, from pre_send hooks to commit.

In order: messages that cannot be read back fail; ``pre_send`` hooks may change or cancel
each message; the rest go to the mailer in one ``Transport.deliver`` call; each result is
classified and committed as soon as the transport tells it (mailout's pool tells each
connection's burst of replies as it is read), in small groups: a committer thread takes
whatever results came in while it was committing the previous group. So a worker killed
between a relay's ``250`` and the commit re-sends about one burst per connection, not the
whole batch. After each commit the post hooks run and the reporter is told. Only what was
committed is reported: a worker that lost a lease (it was silent too long and another worker
took the message over) records nothing for it.
"""

from __future__ import annotations

import functools
import inspect
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from mailout.exceptions import BadHeaderError, MailoutError
from mailout.queue.classify import describe, failed, judge
from mailout.queue.hooks import Hooks
from mailout.queue.models import ClaimedMessage, Outcome, RecipientResult, Report
from mailout.queue.policy import RetryPolicy
from mailout.queue.report import Reporter
from mailout.queue.storage import Storage
from mailout.queue.transport import Result, Transport
from mailout.smtp._protocol.commands import check_argument

__all__ = ["Deliverer", "HookFailed"]

log = logging.getLogger("mailout.queue")


#: A message to send: as claimed, as sent (after pre_send hooks), the recipients hooks removed.
Sending = tuple[ClaimedMessage, ClaimedMessage, list[RecipientResult]]


class HookFailed(MailoutError):
    """A pre_send hook raised: the message is deferred, not sent unchecked."""


@dataclass
class Deliverer:
    """What every delivery of one worker shares."""

    storage: Storage
    worker: str
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    hooks: Hooks = field(default_factory=Hooks)
    reporter: Reporter = field(default_factory=Reporter)
    keep_body: bool = True
    clock: Callable[[], float] = time.time
    draw: Callable[[], float] = random.random

    def deliver(self, transport: Transport, messages: Sequence[ClaimedMessage]) -> list[Report]:
        """Deliver ``messages`` (one mailer) and commit their outcomes; return what was committed.

        Raises only if the store cannot commit (then nothing was recorded: the leases expire
        and the messages are delivered again, which is the documented duplicate window).
        """
        decided: list[tuple[ClaimedMessage, Outcome]] = []
        sending: list[Sending] = []
        for message in messages:
            early = self._prepare(message)
            if isinstance(early, Outcome):
                decided.append((message, early))
            else:
                sending.append((message, *early))
        reports = self._commit(decided, self.clock()) if decided else []
        if not sending:
            return reports
        stream = _Stream(self, sending)
        try:
            to_send = [sent for _, sent, _ in sending]
            if _streams(type(transport)):
                results = transport.deliver(to_send, on_results=stream.tell)
            else:
                results = transport.deliver(to_send)
            if len(results) != len(sending):
                raise RuntimeError(
                    f"{type(transport).__name__}.deliver returned {len(results)} results "
                    f"for {len(sending)} messages"
                )
            stream.tell(range(len(results)), results)  # those it was not told already
        finally:
            stream.close()
        return reports + stream.reports

    def judge_and_commit(
        self, sending: Sequence[Sending], results: Sequence[Result]
    ) -> list[Report]:
        now = self.clock()
        decided = [
            (
                original,
                judge(sent, result, policy=self.policy, now=now, draw=self.draw(), extra=removed),
            )
            for (original, sent, removed), result in zip(sending, results, strict=True)
        ]
        return self._commit(decided, now)

    def _prepare(
        self, message: ClaimedMessage
    ) -> Outcome | tuple[ClaimedMessage, list[RecipientResult]]:
        """The message to send and the recipients a hook removed, or an outcome already."""
        if message.corrupt is not None:
            return failed(message, "corrupt", message.corrupt)
        try:
            changed = self.hooks.before(message)
        except Exception as exc:
            log.exception("pre_send hook raised for message %d: it is deferred", message.id)
            error = HookFailed(f"a pre_send hook raised {describe(exc)}")
            return judge(message, error, policy=self.policy, now=self.clock(), draw=self.draw())
        if changed is None:
            return failed(message, "cancelled", "cancelled by a pre_send hook")
        kept = set(changed.recipients)
        removed = [
            RecipientResult(r, "failed", text="suppressed by a pre_send hook")
            for r in message.recipients
            if r not in kept
        ]
        if not changed.recipients:
            return failed(message, "cancelled", "every recipient suppressed by a pre_send hook")
        try:  # a hook may have written an address that cannot go in a command
            for address in (changed.sender, *changed.recipients):
                check_argument("address", address)
        except BadHeaderError as exc:
            return failed(message, "invalid", f"pre_send hook gave a bad address: {exc}")
        return changed, removed

    def defer_all(self, messages: Sequence[ClaimedMessage], error: BaseException) -> list[Report]:
        """Every message of a batch deferred by one error (its mailer could not be built)."""
        now = self.clock()
        decided = [
            (m, judge(m, error, policy=self.policy, now=now, draw=self.draw())) for m in messages
        ]
        return self._commit(decided, now)

    def _commit(self, decided: list[tuple[ClaimedMessage, Outcome]], now: float) -> list[Report]:
        outcomes = [outcome for _, outcome in decided]
        recorded = self.storage.record(
            outcomes, worker=self.worker, now=now, keep_body=self.keep_body
        )
        reports = []
        for (message, outcome), done in zip(decided, recorded, strict=True):
            if done:
                reports.append(Report(message, outcome))
            else:
                self.reporter.event(
                    "lease-lost",
                    level=logging.WARNING,
                    id=message.id,
                    attempt=message.attempt,
                    outcome=outcome.event,
                    detail="another worker took this message over; it may be delivered twice",
                )
        self.reporter.delivered(reports)
        self.hooks.after(reports)
        return reports


@functools.cache
def _streams(transport: type) -> bool:
    """Whether a transport's ``deliver`` takes ``on_results`` (one of a user's may not)."""
    try:
        return "on_results" in inspect.signature(transport.deliver).parameters  # type: ignore[attr-defined]
    except (AttributeError, TypeError, ValueError):
        return False


class _Stream:
    """Results committed in small groups while the transport is still sending.

    ``tell`` (from any thread: the pool's connections) hands results over; a committer thread
    judges and commits whatever came in while it committed the previous group, so a group is
    one burst of replies or a few, and a connection never waits for the store. If the store
    fails, nothing more is recorded (those messages stay claimed and are delivered again after
    the lease) and ``close`` raises the error.
    """

    def __init__(self, deliverer: Deliverer, sending: Sequence[Sending]) -> None:
        self._deliverer = deliverer
        self._sending = sending
        self._told = [False] * len(sending)
        self._pending: list[tuple[int, Result]] = []
        self._changed = threading.Condition()
        self._closed = False
        self._error: BaseException | None = None
        self.reports: list[Report] = []
        self._thread = threading.Thread(target=self._run, name="mailout-queue-commit", daemon=True)
        self._thread.start()

    def tell(self, indices: Sequence[int], results: Sequence[Result]) -> None:
        with self._changed:
            for index, result in zip(indices, results, strict=True):
                if not self._told[index]:
                    self._told[index] = True
                    self._pending.append((index, result))
            self._changed.notify()

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._pending and not self._closed:
                    self._changed.wait()
                if not self._pending:
                    return
                group, self._pending = self._pending, []
            if self._error is not None:
                continue  # the store failed: record nothing more
            try:
                self.reports += self._deliverer.judge_and_commit(
                    [self._sending[i] for i, _ in group], [r for _, r in group]
                )
            except BaseException as exc:
                self._error = exc

    def close(self) -> None:
        """Wait for every result told to be committed; raise if the store failed."""
        with self._changed:
            self._closed = True
            self._changed.notify()
        self._thread.join()
        if self._error is not None:
            raise self._error
