"""Live events of the catcher's store, fanned out to the web inbox's SSE streams and waiters."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Callable
from typing import Any

from mailout.catcher.store import MessageStore, StoreEvent

__all__ = ["QUEUE_SIZE", "EventHub", "sse"]

QUEUE_SIZE = 1000  # events buffered per stream; a client this far behind resyncs on reconnect


class EventHub:
    """Fans the store's change events out to SSE streams and waiters, across threads.

    The store calls back in whatever thread changed it; each listener is an ``asyncio.Queue``
    owned by one event loop, fed with ``call_soon_threadsafe``. ``close()`` (safe from any
    thread) ends every stream and waiter: call it before stopping the server, since uvicorn
    waits for open responses to finish and an event stream never does by itself.
    """

    def __init__(self, store: MessageStore) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._listeners: dict[asyncio.Queue[StoreEvent | None], asyncio.AbstractEventLoop] = {}
        self._unsubscribe: Callable[[], None] | None = None
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def listen(self) -> asyncio.Queue[StoreEvent | None]:
        """A new queue of events for the running loop; ``None`` in it means the hub closed."""
        queue: asyncio.Queue[StoreEvent | None] = asyncio.Queue(QUEUE_SIZE)
        with self._lock:
            if self._closed:
                queue.put_nowait(None)
                return queue
            self._listeners[queue] = asyncio.get_running_loop()
            if self._unsubscribe is None:
                self._unsubscribe = self._store.subscribe(self._publish)
        return queue

    def forget(self, queue: asyncio.Queue[StoreEvent | None]) -> None:
        with self._lock:
            self._listeners.pop(queue, None)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            listeners = list(self._listeners.items())
            self._listeners.clear()
            unsubscribe, self._unsubscribe = self._unsubscribe, None
        if unsubscribe is not None:
            unsubscribe()
        for queue, loop in listeners:
            self._deliver(loop, queue, None)

    def _publish(self, event: StoreEvent) -> None:
        with self._lock:
            listeners = list(self._listeners.items())
        for queue, loop in listeners:
            self._deliver(loop, queue, event)

    @staticmethod
    def _deliver(
        loop: asyncio.AbstractEventLoop,
        queue: asyncio.Queue[StoreEvent | None],
        event: StoreEvent | None,
    ) -> None:
        def put() -> None:
            # A client this far behind loses events; the UI reloads its list on every event
            # and on every reconnect, so it catches up.
            if event is None:
                while queue.full():
                    queue.get_nowait()
            if not queue.full():
                queue.put_nowait(event)

        with contextlib.suppress(RuntimeError):  # that loop is closed, its listener with it
            loop.call_soon_threadsafe(put)


def sse(kind: str, data: dict[str, Any]) -> str:
    """One server-sent event of type ``kind`` carrying ``data`` as JSON."""
    # WHATWG HTML §9.2 (server-sent events): one "data:" line, as json.dumps has no newline.
    return f"event: {kind}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"
