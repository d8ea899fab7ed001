"""How a worker hands a batch of stored messages to a mailer, and reads each outcome back.

A ``Transport`` takes claimed messages and returns, per message, a ``SendResult`` (accepted,
with per-recipient replies) or the exception that stopped it; given ``on_results``, it also
tells results as soon as they are final (mailout's pool: after each burst of replies), so
that the worker records deliveries while the rest of the batch is still being sent. Three
kinds:

* mailout's SMTP backend: the whole batch through its pipelined pool in one ``send_many``
  call, with the stored envelope and bytes as they are; per-message and per-recipient replies
  come straight from the client. A relay that cannot be reached fails the batch with one
  connection error (the pool's first connect), not one per message.
* a backend that provides ``queue_transport()``: its own (issue 11's Django/ESP adapters).
* any other backend (console, file, locmem, a custom one): opened once for the batch, and
  given one ``QueuedMessage`` per ``send_messages()`` call, so that each message gets its
  own answer; wire-level backends write the stored bytes unchanged.
"""

from __future__ import annotations

import logging
import math
import sys
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from mailout.exceptions import MailoutError, SMTPConnectError, SMTPError
from mailout.queue.models import ClaimedMessage
from mailout.queue.stored import QueuedMessage
from mailout.smtp import Reply, SendResult
from mailout.utils import import_string

if TYPE_CHECKING:
    from mailout.backends.base import BaseEmailBackend
    from mailout.backends.smtp import EmailBackend as SMTPBackend

__all__ = [
    "ADAPTERS",
    "BackendTransport",
    "NotSent",
    "OnResults",
    "PoolTransport",
    "Result",
    "Transport",
    "Transports",
    "transport_for",
]

log = logging.getLogger("mailout.queue")

Result = SendResult | BaseException
#: ``on_results(indices, results)``: final results of some messages (indices into the
#: messages given to ``deliver``), each told at most once, from any thread.
OnResults = Callable[[Sequence[int], Sequence[Result]], None]


class NotSent(MailoutError):
    """A backend returned 0 for a message without saying why: retried later, never dropped."""


class Transport(Protocol):
    #: Connections one delivery may use at once, and messages each carries at a time (for
    #: the cap on parallel deliveries per destination domain).
    connections: int
    per_connection: float

    def deliver(
        self, messages: Sequence[ClaimedMessage], *, on_results: OnResults | None = None
    ) -> list[Result]:
        """One result per message, in order. Never raises for a message's failure.

        ``on_results`` may be told some results earlier, as they become final; results it was
        not told are taken from the returned list. (A transport whose ``deliver`` takes no
        ``on_results`` works too: its results are recorded when it returns.)
        """
        ...

    def close(self) -> None: ...


class PoolTransport:
    """mailout's SMTP backend: one pipelined ``send_many`` over its pool per batch."""

    def __init__(self, backend: SMTPBackend) -> None:
        self.backend = backend
        self.connections = backend.pool_options.size
        self.per_connection: float = backend.pool_options.batch_size

    def deliver(
        self, messages: Sequence[ClaimedMessage], *, on_results: OnResults | None = None
    ) -> list[Result]:
        try:
            self.backend.open()
        except SMTPError as exc:  # the relay is down (or refuses us): one error, every message
            return [exc] * len(messages)
        pool = self.backend.connection
        if pool is None:  # fail_silently swallowed the error: report it all the same
            return [SMTPConnectError("the SMTP backend could not connect")] * len(messages)
        results: list[Result | None] = []
        items = []
        where: list[int] = []  # item -> message index
        for index, message in enumerate(messages):
            try:  # an address a pre_send hook wrote may not be a mailbox: that message fails
                items.append((message.envelope(), message.data))
                where.append(index)
                results.append(None)
            except MailoutError as exc:
                results.append(exc)
        tell = None
        if on_results is not None:
            report = on_results

            def tell(indices: Sequence[int], outcomes: Sequence[Result]) -> None:
                report([where[i] for i in indices], outcomes)

        sent = iter(pool.send_many(items, on_results=tell))
        return [next(sent) if r is None else r for r in results]

    def close(self) -> None:
        self.backend.close()


class BackendTransport:
    """Any backend: one ``QueuedMessage`` per ``send_messages()`` call, one session per batch."""

    connections = 1
    per_connection = math.inf

    def __init__(self, backend: BaseEmailBackend) -> None:
        self.backend = backend
        self._name = f"{type(backend).__module__}.{type(backend).__qualname__}"

    def deliver(
        self, messages: Sequence[ClaimedMessage], *, on_results: OnResults | None = None
    ) -> list[Result]:
        try:
            self.backend.open()
        except Exception as exc:
            return [exc] * len(messages)
        results: list[Result] = []
        for index, message in enumerate(messages):
            results.append(self._send(message))
            if on_results is not None:
                on_results([index], results[-1:])
        return results

    def wrap(self, message: ClaimedMessage) -> Any:
        """What ``send_messages()`` is given for one stored message."""
        return QueuedMessage(message)

    def _send(self, message: ClaimedMessage) -> Result:
        try:
            queued = self.wrap(message)
            sent = self.backend.send_messages([queued])
        except Exception as exc:
            return exc
        if not sent:
            return NotSent(f"{self._name} reported the message as not sent")
        reply = Reply(250, f"accepted by {self._name}", None, "send_messages")
        return SendResult(dict.fromkeys(message.recipients, reply), {}, reply)

    def close(self) -> None:
        self.backend.close()


#: Transports for the backends of a framework (mailout.django's for Django's backends: the
#: smtp, console, locmem backends, an ESP's), tried after ``queue_transport()`` when that
#: framework is loaded: framework module -> dotted path of ``adapter(backend) -> Transport |
#: None`` (None: not one it takes).
ADAPTERS: dict[str, str] = {"django": "mailout.django.delivery.transport_for_django"}


def transport_for(backend: BaseEmailBackend) -> Transport:
    """The way to deliver through ``backend`` (see the module docstring)."""
    from mailout.backends.smtp import EmailBackend as SMTPBackend

    own = getattr(backend, "queue_transport", None)
    if callable(own):
        transport: Transport = own()
        return transport
    for framework, path in ADAPTERS.items():
        if framework in sys.modules:  # else no backend of that framework can exist
            adapter = import_string(path, setting="mailer")
            adapted: Transport | None = adapter(backend)
            if adapted is not None:
                return adapted
    if isinstance(backend, SMTPBackend):
        return PoolTransport(backend)
    return BackendTransport(backend)


class Transports:
    """A worker's transports: one per mailer per delivery thread, kept open between batches
    (a mailer's connections are reused, as a backend opened with ``open()`` reuses them)."""

    def __init__(self, make_backend: Callable[[str], BaseEmailBackend]) -> None:
        self._make_backend = make_backend
        self._local = threading.local()
        self._all: list[Transport] = []
        self._shapes: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()

    def get(self, mailer: str) -> Transport:
        """This thread's transport for ``mailer`` (built on first use)."""
        cache: dict[str, Transport] = self._local.__dict__.setdefault("transports", {})
        transport = cache.get(mailer)
        if transport is None:
            transport = cache[mailer] = transport_for(self._make_backend(mailer))
            with self._lock:
                self._all.append(transport)
        return transport

    def shape(self, mailer: str) -> tuple[int, float]:
        """Connections per delivery and messages per connection of ``mailer`` (1 and any
        number if it cannot be built: its delivery will report why)."""
        with self._lock:
            shape = self._shapes.get(mailer)
        if shape is None:
            try:
                probe = transport_for(self._make_backend(mailer))
                shape = (probe.connections, probe.per_connection)
                probe.close()
            except Exception:
                shape = (1, math.inf)
            with self._lock:
                self._shapes[mailer] = shape
        return shape

    def close_all(self) -> None:
        with self._lock:
            transports, self._all = self._all, []
        for transport in transports:
            try:
                transport.close()
            except Exception as exc:
                log.warning("closing a mailer failed: %s", exc)
