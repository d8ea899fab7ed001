"""The queue's store behind one small interface, and ``open_storage(url)`` to pick one.

Every storage keeps the same promises, checked by one contract suite run against each
(``tests/queue/test_storage_contract.py``):

* ``enqueue`` stores a whole batch in one durable transaction, or nothing;
* ``claim`` hands due messages to one worker at a time under a lease, fairly (new mail and
  retries share each batch; priority orders within each), within the rate limits it is given;
* ``record`` changes a message only for the worker and attempt that hold its lease;
* a lease that is not renewed expires, and ``release_expired`` makes its messages due again.

A storage is safe to use from several threads. Times are Unix seconds passed in by the
caller (``now``), so tests run on an injected clock.
"""

from __future__ import annotations

import abc
import builtins
import os
import threading
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Final, Protocol

from mailout.conf import settings
from mailout.exceptions import ImproperlyConfigured
from mailout.queue.caps import Caps, LocalCaps
from mailout.queue.limits import Bucket, Limit
from mailout.queue.models import (
    ClaimedMessage,
    MessageDetail,
    MessageSummary,
    NewMessage,
    Outcome,
    QueueStats,
    Selection,
    State,
    WorkerInfo,
)
from mailout.utils import import_string

__all__ = [
    "ENQUEUERS",
    "STORAGES",
    "Enqueuer",
    "Storage",
    "bound_storage",
    "open_storage",
    "producer",
    "shared_storage",
]

#: URL scheme -> dotted path of the class; each class has ``from_url(url)``.
STORAGES: Final[dict[str, str]] = {
    "sqlite": "mailout.queue.storage.sqlite.SQLiteStorage",
    "memory": "mailout.queue.storage.memory.MemoryStorage",
    "postgresql": "mailout.queue.storage.postgres.PostgresStorage",
    "postgres": "mailout.queue.storage.postgres.PostgresStorage",
    "django": "mailout.django.queue.DjangoStorage",  # the worker's side of a "django" queue
}

#: URL schemes whose producers store through a framework's own connection, in its
#: transaction (``EMAIL_QUEUE_URL = "django"``): scheme -> dotted path of ``enqueuer(url)``.
ENQUEUERS: Final[dict[str, str]] = {"django": "mailout.django.queue.enqueuer"}


class Enqueuer(Protocol):
    name: str

    def enqueue(self, messages: Iterable[NewMessage], *, now: float) -> builtins.list[int]: ...


class Storage(abc.ABC):
    """Where queued mail lives. ``name`` identifies it in errors (a file path, a URL without
    its password)."""

    name: str

    # -- producers -------------------------------------------------------------------------

    @abc.abstractmethod
    def enqueue(self, messages: Iterable[NewMessage], *, now: float) -> list[int]:
        """Store every message in one transaction; return their ids once it is committed.

        The iterable is consumed inside the transaction, so an error raised by it (bad input
        further down a batch) stores nothing. A message whose ``key`` is already stored is
        not stored again; its existing id is returned.
        """

    # -- workers ---------------------------------------------------------------------------

    @abc.abstractmethod
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
        """Take up to ``limit`` due messages for ``worker`` until ``now + lease``.

        New mail and retries share the batch half and half (what one leaves, the other
        takes); within each, high priority first, then the earliest due. A mailer with a
        ``limits`` entry (``"*"``: every mailer) gets no more than its tokens and daily quota
        allow, shared through the store by every worker. Messages of ``exclude_domains``
        (by the domain of their first recipient) and of ``exclude_mailers`` (at their cap on
        connections) are left for later.
        """

    @abc.abstractmethod
    def heartbeat(self, info: WorkerInfo, *, lease: float, now: float) -> int:
        """Register or refresh a worker and extend every lease it holds to ``now + lease``;
        return how many messages it holds."""

    @abc.abstractmethod
    def record(
        self, outcomes: Sequence[Outcome], *, worker: str, now: float, keep_body: bool = True
    ) -> list[bool]:
        """Store the outcome of each attempt, with its per-recipient events, in one transaction.

        An outcome is recorded only if ``worker`` still holds that message's lease for that
        attempt; the list says which were. ``keep_body=False`` drops the bytes of sent mail.
        """

    @abc.abstractmethod
    def release(self, ids: Sequence[int], *, worker: str, now: float) -> int:
        """Give back claimed messages that were never attempted (the attempt is not counted)."""

    @abc.abstractmethod
    def release_expired(self, *, now: float) -> int:
        """Make the messages of every expired lease due again now; return how many."""

    @abc.abstractmethod
    def unregister(self, worker: str) -> None:
        """Forget a worker that stopped (its leases, if any, expire as usual)."""

    @abc.abstractmethod
    def next_due(self, *, now: float, exclude_mailers: Collection[str] = ()) -> float | None:
        """The earliest due time of waiting mail (queued or deferred), None if nothing waits."""

    @abc.abstractmethod
    def bucket(self, name: str) -> Bucket | None:
        """The rate-limit state of mailer ``name`` (None before its first limited claim)."""

    # -- operators -------------------------------------------------------------------------

    @abc.abstractmethod
    def stats(self, *, now: float, failures: int = 5) -> QueueStats:
        """Counts by state, the earliest due and next retry, recent failures, live workers."""

    @abc.abstractmethod
    def list(self, *, state: State | None = None, limit: int = 50) -> list[MessageSummary]:
        """Messages of one state, most recently changed first (all states: newest first)."""

    @abc.abstractmethod
    def get(self, id: int) -> MessageDetail:
        """One message with its events; raises ``MessageNotFound``."""

    @abc.abstractmethod
    def hold(self, selection: Selection, *, now: float) -> int:
        """Put queued or deferred messages aside until released; return how many."""

    @abc.abstractmethod
    def unhold(self, selection: Selection, *, now: float) -> int:
        """Release held messages (``queue release``): waiting again as they were."""

    @abc.abstractmethod
    def expire(self, selection: Selection, *, now: float) -> int:
        """Fail queued, deferred or held messages now, as expired."""

    @abc.abstractmethod
    def retry(self, selection: Selection, *, now: float, failed_only: bool = False) -> int:
        """Make deferred messages due now; queue failed ones again (their undelivered
        recipients, with a new lifetime). ``failed_only``: every failed message."""

    @abc.abstractmethod
    def purge(self, states: Collection[State], *, before: float, batch: int = 1000) -> int:
        """Delete messages in ``states`` last changed before ``before``, with their events,
        ``batch`` at a time; return how many."""

    # -- what a storage may do better than the defaults --------------------------------------

    def caps(
        self,
        *,
        worker: str,
        domain_cap: int,
        mailer_caps: Mapping[str, int],
        lease: float,
        clock: Callable[[], float],
    ) -> Caps:
        """The caps on connections in use (per domain, per mailer) that ``worker`` obeys.
        By default they are counted in this process; a storage shared by many hosts counts
        them in the store (``worker``'s slots then live under a lease its heartbeat renews)."""
        return LocalCaps(domain_cap, mailer_caps)

    def subscribe(
        self, wake: Callable[[], None], *, slots_freed: Callable[[], None] | None = None
    ) -> Callable[[], None] | None:
        """Call ``wake()`` (from any thread) when mail may have become due: enqueued, retried,
        released; and ``slots_freed()`` (``wake()`` if None) when a worker elsewhere gave
        connection slots back (``caps``). Returns a function that stops it, or None if this
        storage cannot tell (the worker then polls, as it always does as well: a missed call
        costs a poll interval)."""
        return None

    def migrate(self) -> builtins.list[int]:
        """Create or upgrade the store's schema; return the versions applied. (SQLite does it
        when a file is opened: nothing to do here.)"""
        return []

    def bound_to(self, connection: object) -> Enqueuer:
        """This store's ``enqueue`` inside the caller's own database ``connection`` and its
        transaction (the messages commit or roll back with the caller's data)."""
        raise ImproperlyConfigured(
            f"the queue {self.name} cannot use your database connection: only a "
            "postgresql:// queue can enqueue inside your transaction"
        )

    def close(self) -> None:  # noqa: B027 - a storage without resources has nothing to close
        """Release connections and files."""

    def __enter__(self) -> Storage:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def bound_storage(connection: object, url: str | None = None) -> Enqueuer:
    """``enqueue`` inside the caller's ``connection`` for the queue at ``url`` (default:
    ``EMAIL_QUEUE_URL``), without opening connections of the queue's own."""
    if url is None:
        url = settings.EMAIL_QUEUE_URL
    scheme = url.partition(":")[0].lower()
    if scheme in ("postgresql", "postgres"):
        from mailout.queue.storage._pgbound import BoundStorage

        return BoundStorage.from_url(url, connection)
    if scheme == "sqlite":
        from mailout.queue.storage._sqlitebound import BoundSQLite, path_of_url

        return BoundSQLite.for_file(connection, os.path.abspath(path_of_url(url)))
    if scheme in ENQUEUERS:
        raise ImproperlyConfigured(
            f"connection: a {scheme!r} queue is stored through {scheme}'s own connection, in "
            "its transaction; leave connection out"
        )
    raise ImproperlyConfigured(
        "connection: only a postgresql:// or sqlite:/// queue can enqueue inside your "
        f"transaction (EMAIL_QUEUE_URL is {url.partition(':')[0]}:)"
    )


def producer(url: str | None = None) -> Enqueuer:
    """Where ``enqueue`` stores for ``url`` (default: ``EMAIL_QUEUE_URL``): the framework's
    connection for the ``ENQUEUERS`` schemes, else the process's shared storage."""
    if url is None:
        url = settings.EMAIL_QUEUE_URL
    path = ENQUEUERS.get(url.partition(":")[0].lower())
    if path is not None:
        make = import_string(path, setting="EMAIL_QUEUE_URL")
        enqueuer: Enqueuer = make(url)
        return enqueuer
    return shared_storage(url)


def open_storage(url: str | None = None, *, setting: str = "EMAIL_QUEUE_URL") -> Storage:
    """A new storage for ``url`` (default: ``EMAIL_QUEUE_URL``): ``sqlite:///relative.db``,
    ``sqlite:////absolute.db``, ``memory:`` or ``postgresql://user@host:5432/db`` (needs
    ``mailout[postgres]``). Errors name ``setting``."""
    if url is None:
        url = settings.EMAIL_QUEUE_URL
    scheme = url.partition(":")[0].lower()
    path = STORAGES.get(scheme)
    if path is None or (":" not in url and scheme not in ENQUEUERS):
        known = ", ".join(f"{s}:" for s in STORAGES)
        raise ImproperlyConfigured(f"{setting}: unknown queue URL {url!r}; use one of {known}")
    storage_class = import_string(path, setting=setting)
    return storage_class.from_url(url, setting=setting)  # type: ignore[no-any-return]


_shared: dict[tuple[int, str], Storage] = {}
_shared_lock = threading.Lock()


def shared_storage(url: str | None = None) -> Storage:
    """One storage per URL per process, for callers that enqueue often (a storage is
    thread-safe; a forked child gets its own, as database connections must not cross fork)."""
    if url is None:
        url = settings.EMAIL_QUEUE_URL
    key = (os.getpid(), url)
    with _shared_lock:
        storage = _shared.get(key)
        if storage is None:
            storage = _shared[key] = open_storage(url)
        return storage


def close_shared() -> None:
    """Close every shared storage (tests; the end of a process)."""
    with _shared_lock:
        storages = list(_shared.values())
        _shared.clear()
    for storage in storages:
        storage.close()
