"""Messages read for the web inbox: parsed off the event loop, once, and kept for a while.

The SMTP side and the web app share one event loop, so nothing that reads a message may run on
it: a read (bounded by ``parse``'s limits, yet a good fraction of a second of CPU for a big or
busy message) goes to a worker thread, and its result is kept, least recently used first out,
up to ``cache_bytes`` of stored message size. The SMTP side hands over each message it has
just read to store it, so a new message is read once; the next request for a message -- the
HTML frame, each cid: image, each attachment -- finds it read; concurrent requests for a
message being read wait for that one read.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import TypeVar

from mailout.catcher import parse
from mailout.catcher.store import MessageStore, StoreEvent

__all__ = ["MessageViews"]

T = TypeVar("T")

CACHE_BYTES = 32 * 1024 * 1024
# Reads at once: each holds the GIL while it works, so more threads would not read faster but
# would take more of the interpreter from the event loop.
WORKERS = 2


class MessageViews:
    """Parsed messages for the API, read in worker threads and cached by id."""

    def __init__(
        self, store: MessageStore, *, cache_bytes: int = CACHE_BYTES, workers: int = WORKERS
    ) -> None:
        self.store = store
        self.cache_bytes = cache_bytes
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="mailout-read"
        )
        self._lock = threading.Lock()
        self._cache: OrderedDict[int, tuple[int, parse.Parsed]] = OrderedDict()
        self._cached_bytes = 0
        self._reading: dict[int, concurrent.futures.Future[parse.Parsed | None]] = {}
        self._unsubscribe = store.subscribe(self._forget)

    async def read(self, message_id: int) -> parse.Parsed | None:
        """The message read for display, or None if there is no such message."""
        with self._lock:
            cached = self._cache.get(message_id)
            if cached is not None:
                self._cache.move_to_end(message_id)
                return cached[1]
            future = self._reading.get(message_id)
            if future is None:
                future = self._executor.submit(self._load, message_id)
                self._reading[message_id] = future
        return await asyncio.wrap_future(future)

    async def run(self, function: Callable[..., T], *args: object) -> T:
        """Run CPU work on a read message (decoding an attachment, say) in a worker."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, function, *args)

    def close(self) -> None:
        self._unsubscribe()
        self._executor.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            self._cache.clear()
            self._cached_bytes = 0

    @property
    def cached(self) -> tuple[int, ...]:
        """Ids of the messages kept, least recently used first (for tests)."""
        with self._lock:
            return tuple(self._cache)

    # -- in a worker ---------------------------------------------------------------------------

    def _load(self, message_id: int) -> parse.Parsed | None:
        try:
            raw = self.store.raw(message_id)
            if raw is None:
                return None
            parsed = parse.read(raw)
            self.keep(message_id, len(raw), parsed)
            return parsed
        finally:
            with self._lock:
                self._reading.pop(message_id, None)

    def keep(self, message_id: int, size: int, parsed: parse.Parsed) -> None:
        """Keep a message already read (the SMTP side reads each one as it stores it)."""
        if size > self.cache_bytes:
            return  # read again each time: bounded work, off the loop all the same
        with self._lock:
            self._cache[message_id] = (size, parsed)
            self._cached_bytes += size
            while self._cached_bytes > self.cache_bytes:
                _, (old_size, _) = self._cache.popitem(last=False)
                self._cached_bytes -= old_size

    def _forget(self, event: StoreEvent) -> None:
        with self._lock:
            if event.kind == "cleared":
                self._cache.clear()
                self._cached_bytes = 0
            elif event.kind == "deleted" and event.id is not None and event.id in self._cache:
                size, _ = self._cache.pop(event.id)
                self._cached_bytes -= size
