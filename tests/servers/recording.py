"""A recording SMTP sink that knows which client process sent each message, for crash tests.

It is the fast sink of ``sink.py`` (thread mode, keeping every message) with two additions:
each accepted message is recorded with the client's port, and ``on_accept(message, port)``
is called *after* the ``250`` for that message was written to the socket — the moment
between a relay's acceptance and the client's own bookkeeping that a crash test aims at.
``pid_of_port`` finds the local process that owns a client port (Linux ``/proc``).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType

from tests.servers._loop import LoopThread
from tests.servers.sink import SinkCore, SinkMessage, _Sink, _SinkProtocol

__all__ = ["Accepted", "RecordingServer", "pid_of_port"]


@dataclass(frozen=True, slots=True)
class Accepted:
    message: SinkMessage
    port: int  # the client's port

    @property
    def message_id(self) -> str:
        head = self.message.content.split(b"\r\n\r\n", 1)[0]
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"message-id:"):
                return line.split(b":", 1)[1].strip().decode()
        return ""


class _Protocol(_SinkProtocol):
    def __init__(self, sink: _RecordingSink) -> None:
        super().__init__(sink)
        self._core = SinkCore(sink.ehlo, self._accepted, keep=True)
        self._recording = sink

    def _accepted(self, message: SinkMessage | None) -> None:
        assert message is not None
        assert self._transport is not None
        port = int(self._transport.get_extra_info("peername")[1])
        self._recording.record(Accepted(message, port))


class _RecordingSink(_Sink):
    def __init__(self, on_accept: Callable[[Accepted], None] | None) -> None:
        super().__init__(
            [0, 0], delay=0.0, keep=True, hostname="recording.test", extensions=_EXTENSIONS
        )
        self.accepted_list: list[Accepted] = []
        self.on_accept = on_accept
        self.lock = threading.Lock()

    def record(self, accepted: Accepted) -> None:
        with self.lock:
            self.counters[0] += 1
            self.accepted_list.append(accepted)
        if self.on_accept is not None:
            # Runs once data_received has returned, i.e. after the 250 was written.
            asyncio.get_running_loop().call_soon(self.on_accept, accepted)

    async def listen(self, host: str) -> int:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: _Protocol(self), host, 0, backlog=1024)
        return int(self.server.sockets[0].getsockname()[1])


_EXTENSIONS = (
    "PIPELINING",
    "CHUNKING",
    "8BITMIME",
    "SMTPUTF8",
    "SIZE 1073741824",
    "ENHANCEDSTATUSCODES",
)


class RecordingServer:
    """``with RecordingServer(on_accept=...) as srv``: ``srv.accepted`` lists every message."""

    def __init__(self, *, on_accept: Callable[[Accepted], None] | None = None) -> None:
        self.host, self.port = "127.0.0.1", 0
        self._sink = _RecordingSink(on_accept)
        self._thread: LoopThread | None = None

    @property
    def accepted(self) -> list[Accepted]:
        with self._sink.lock:
            return list(self._sink.accepted_list)

    def start(self) -> RecordingServer:
        self._thread = LoopThread("RecordingServer")
        self.port = self._thread.run(self._sink.listen(self.host))
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._thread.run(self._sink.close())
            self._thread.stop()
            self._thread = None

    def __enter__(self) -> RecordingServer:
        return self.start()

    def __exit__(
        self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _inodes_of_port(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if int(fields[1].rsplit(":", 1)[1], 16) == port:
                        inodes.add(fields[9])
        except OSError:
            continue
    return inodes


def pid_of_port(port: int, pids: Iterable[int]) -> int | None:
    """Which of ``pids`` has a socket bound to local ``port`` (None if none does)."""
    inodes = _inodes_of_port(port)
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    return pid
        except OSError:
            continue
    return None
