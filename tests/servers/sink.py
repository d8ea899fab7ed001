"""A fast SMTP sink on loopback for benchmarks and bulk tests: it accepts everything, counts it.

It advertises PIPELINING, CHUNKING, 8BITMIME, SMTPUTF8, SIZE and ENHANCEDSTATUSCODES, and
runs either on an event loop in a background thread of the test process (default) or in a
separate process (``process=True``) so that a benchmark's client and server do not share one
GIL::

    with SinkServer(process=True, delay=0.001) as sink:
        ...  # send to sink.host, sink.port
        assert sink.count == 1000

Latency model (`delay`): the sink answers each *batch* of input as a whole, the way a real
server answers pipelined commands, and the answer to a batch is written `delay` seconds after
the batch arrived. Input that arrives meanwhile is read and answered on its own schedule, so
`delay` behaves like a round-trip time on the wire, not like a slow server: N pipelined
commands cost one `delay`, N lock-step commands cost N. The greeting is delayed the same way.

The protocol core (`SinkCore`) does no I/O: ``feed(bytes) -> bytes`` of replies.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import multiprocessing.connection
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from tests.servers._loop import LoopThread

__all__ = ["SinkCore", "SinkMessage", "SinkServer"]

EXTENSIONS: tuple[str, ...] = (
    "PIPELINING",
    "CHUNKING",
    "8BITMIME",
    "SMTPUTF8",
    "SIZE 1073741824",
    "ENHANCEDSTATUSCODES",
)

_OK_MAIL = b"250 2.1.0 OK\r\n"
_OK_RCPT = b"250 2.1.5 OK\r\n"
_OK = b"250 2.0.0 OK\r\n"
_QUEUED = b"250 2.0.0 OK: queued\r\n"
_GO_AHEAD = b"354 End data with <CR><LF>.<CR><LF>\r\n"
_BYE = b"221 2.0.0 Bye\r\n"
_BAD_SEQUENCE = b"503 5.5.1 Bad sequence of commands\r\n"
_NO_RECIPIENTS = b"554 5.5.1 No valid recipients\r\n"
_SYNTAX = b"501 5.5.4 Syntax error\r\n"
_UNKNOWN = b"500 5.5.2 Command unrecognized\r\n"
_END_OF_DATA = b"\r\n.\r\n"
_COMMAND, _DATA, _BDAT = range(3)


@dataclass(frozen=True, slots=True)
class SinkMessage:
    """A message kept by a sink with ``keep=True``; `content` is dot-unstuffed (DATA) or the
    concatenated chunks (BDAT)."""

    sender: bytes
    recipients: tuple[bytes, ...]
    content: bytes


class SinkCore:
    """The sink's SMTP state machine for one connection, with no I/O.

    `feed` takes whatever bytes arrived and returns the replies owed, in order. After ``QUIT``
    `closing` is true and the driver closes once the replies are written. Accepted messages
    are passed to `on_message` (``None`` unless `keep`).
    """

    __slots__ = (
        "_buf",
        "_chunks",
        "_ehlo",
        "_keep",
        "_last",
        "_left",
        "_mail",
        "_on_message",
        "_rcpts",
        "_scan",
        "_start",
        "_state",
        "closing",
    )

    def __init__(
        self, ehlo: bytes, on_message: Callable[[SinkMessage | None], None], keep: bool = False
    ) -> None:
        self._ehlo, self._on_message, self._keep = ehlo, on_message, keep
        self._buf = bytearray()
        self._state = _COMMAND
        self._mail: bytes | None = None
        self._rcpts: list[bytes] = []
        self._chunks = bytearray()
        self._start = self._scan = self._left = 0
        self._last = False
        self.closing = False

    def feed(self, data: bytes) -> bytes:
        buf = self._buf
        buf += data
        out: list[bytes] = []
        pos = 0
        while not self.closing:
            if self._state == _DATA:
                end = buf.find(_END_OF_DATA, self._scan)
                if end < 0:
                    # The terminator may straddle this read and the next one.
                    self._scan = max(self._scan, len(buf) - 4)
                    break
                content = b""
                if self._keep:  # RFC 5321 §4.5.2: drop each line's leading dot, first included
                    content = bytes(buf[self._start - 2 : end + 2])
                    content = content.replace(b"\r\n.", b"\r\n")[2:]
                out.append(self._accept(content))
                pos, self._state = end + 5, _COMMAND
            elif self._state == _BDAT:
                take = min(self._left, len(buf) - pos)
                if self._keep:
                    self._chunks += buf[pos : pos + take]
                pos += take
                self._left -= take
                if self._left:
                    break
                self._state = _COMMAND
                if self._mail is None or not self._rcpts:
                    out.append(_BAD_SEQUENCE)
                elif self._last:
                    out.append(self._accept(bytes(self._chunks)))
                else:
                    out.append(_OK)
            else:
                end = buf.find(b"\r\n", pos)
                if end < 0:
                    break
                out.append(self._command(bytes(buf[pos:end]), end + 2))
                pos = end + 2
        # Compact, keeping what DATA still needs: the CRLF before its content (so that an
        # empty message's ".\r\n" is found as "\r\n.\r\n") and, if kept, the content itself.
        if self._state == _DATA:
            pos = self._start - 2 if self._keep else self._scan
            self._start -= pos
            self._scan -= pos
        del buf[:pos]
        return b"".join(out)

    def _command(self, line: bytes, next_pos: int) -> bytes:
        verb = line[:4].upper()
        if verb == b"MAIL":
            if self._mail is not None:
                return _BAD_SEQUENCE
            self._mail = line[10:].split(b">", 1)[0].lstrip(b" <") if self._keep else b""
            return _OK_MAIL
        if verb == b"RCPT":
            if self._mail is None:
                return _BAD_SEQUENCE
            self._rcpts.append(line[8:].split(b">", 1)[0].lstrip(b" <") if self._keep else b"")
            return _OK_RCPT
        if verb == b"DATA":
            if self._mail is None or not self._rcpts:
                return _NO_RECIPIENTS
            self._state, self._start, self._scan = _DATA, next_pos, next_pos - 2
            return _GO_AHEAD
        if verb == b"BDAT":
            args = line[5:].split()
            if not args or not args[0].isdigit():
                return _SYNTAX
            self._state, self._left = _BDAT, int(args[0])
            self._last = len(args) > 1 and args[1].upper() == b"LAST"
            return b""  # answered once the chunk is in
        if verb in (b"EHLO", b"HELO", b"RSET"):
            self._reset()
            return self._ehlo if verb == b"EHLO" else _OK
        if verb == b"NOOP":
            return _OK
        if verb == b"QUIT":
            self.closing = True
            return _BYE
        return _UNKNOWN

    def _accept(self, content: bytes) -> bytes:
        assert self._mail is not None
        self._on_message(
            SinkMessage(self._mail, tuple(self._rcpts), content) if self._keep else None
        )
        self._reset()
        return _QUEUED

    def _reset(self) -> None:
        self._mail = None
        self._rcpts = []
        self._chunks = bytearray()


class _SinkProtocol(asyncio.Protocol):
    """Drive a `SinkCore`; write each batch of replies `delay` seconds after its input."""

    def __init__(self, sink: _Sink) -> None:
        self._sink = sink
        self._core = SinkCore(sink.ehlo, sink.accepted, sink.keep)
        self._loop = asyncio.get_running_loop()
        self._pending: deque[tuple[float, bytes | None]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._sink.transports.add(transport)
        self._sink.counters[1] += 1
        self._send(self._sink.greeting)

    def data_received(self, data: bytes) -> None:
        replies = self._core.feed(data)
        if replies:
            self._send(replies)
        if self._core.closing:
            self._send(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:
            self._sink.transports.discard(self._transport)
        if self._timer is not None:
            self._timer.cancel()

    def _send(self, data: bytes | None) -> None:
        """Write `data` (``None``: close) now, or `delay` seconds from now, in order."""
        if not self._sink.delay:
            self._write(data)
            return
        self._pending.append((self._loop.time() + self._sink.delay, data))
        if self._timer is None:
            self._timer = self._loop.call_at(self._pending[0][0], self._flush)

    def _flush(self) -> None:
        self._timer = None
        now = self._loop.time()
        while self._pending and self._pending[0][0] <= now:
            self._write(self._pending.popleft()[1])
        if self._pending:
            self._timer = self._loop.call_at(self._pending[0][0], self._flush)

    def _write(self, data: bytes | None) -> None:
        assert self._transport is not None
        if data is None:
            self._transport.close()
        elif not self._transport.is_closing():
            self._transport.write(data)


class _Sink:
    """What every connection of one sink shares; lives wherever the event loop runs."""

    def __init__(
        self, counters: Any, *, delay: float, keep: bool, hostname: str, extensions: tuple[str, ...]
    ) -> None:
        self.counters = counters  # [messages, connections]: a list, or a shared array
        self.delay, self.keep = delay, keep
        self.messages: list[SinkMessage] = []
        self.transports: set[asyncio.Transport] = set()
        self.server: asyncio.Server | None = None
        self.greeting = f"220 {hostname} ESMTP sink\r\n".encode()
        lines = [hostname, *extensions]
        self.ehlo = "".join(
            f"250{' ' if i == len(lines) - 1 else '-'}{line}\r\n" for i, line in enumerate(lines)
        ).encode()

    def accepted(self, message: SinkMessage | None) -> None:
        self.counters[0] += 1
        if message is not None:
            self.messages.append(message)

    async def listen(self, host: str) -> int:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: _SinkProtocol(self), host, 0, backlog=1024)
        return int(self.server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for transport in list(self.transports):
            transport.close()
        await asyncio.sleep(0)  # let connection_lost run before the loop goes away


def _child_main(
    conn: multiprocessing.connection.Connection, host: str, counters: Any, options: dict[str, Any]
) -> None:
    """The sink process: serve until the parent writes to `conn`, then send back kept mail."""

    async def main() -> list[SinkMessage]:
        sink = _Sink(counters, **options)
        port = await sink.listen(host)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_reader(conn.fileno(), stop.set)
        conn.send(port)
        await stop.wait()
        await sink.close()
        return sink.messages

    conn.send(asyncio.run(main()))
    conn.close()


class SinkServer:
    """A fast accept-everything SMTP server; use it as a context manager.

    Arguments (keyword-only): `host` (default ``127.0.0.1``), `delay` (seconds, see the module
    docstring), `keep` (keep accepted messages in `messages`), `process` (serve from a separate
    process; `messages` is then filled when the server stops), `hostname`, `extensions`.

    Attributes: `host`, `port`, `count` (messages accepted), `connections`, `messages`.
    In process mode the counters live in shared memory and read live across processes; the
    server process is started with ``spawn``, so a script that uses it must guard its entry
    point with ``if __name__ == "__main__":``.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        delay: float = 0.0,
        keep: bool = False,
        process: bool = False,
        hostname: str = "sink.test",
        extensions: tuple[str, ...] = EXTENSIONS,
    ) -> None:
        if delay < 0:
            raise ValueError(f"SinkServer.delay: must be >= 0, got {delay}")
        self.host, self.port, self.process = host, 0, process
        self.messages: list[SinkMessage] = []
        self._options: dict[str, Any] = {
            "delay": delay,
            "keep": keep,
            "hostname": hostname,
            "extensions": tuple(extensions),
        }
        self._mp = multiprocessing.get_context("spawn")
        self._counters: Any = self._mp.RawArray("q", 2) if process else [0, 0]
        self._thread: LoopThread | None = None
        self._sink: _Sink | None = None
        self._child: Any = None
        self._conn: multiprocessing.connection.Connection | None = None

    @property
    def count(self) -> int:
        return int(self._counters[0])

    @property
    def connections(self) -> int:
        return int(self._counters[1])

    def start(self) -> SinkServer:
        if self.process:
            self._conn, child_conn = self._mp.Pipe()
            args = (child_conn, self.host, self._counters, self._options)
            self._child = self._mp.Process(target=_child_main, args=args, daemon=True)
            self._child.start()
            child_conn.close()
            if not self._conn.poll(30):
                self.stop()
                raise RuntimeError("SinkServer: the sink process did not start")
            self.port = self._conn.recv()
        else:
            self._sink = _Sink(self._counters, **self._options)
            self.messages = self._sink.messages
            self._thread = LoopThread("SinkServer")
            self.port = self._thread.run(self._sink.listen(self.host))
        return self

    def stop(self) -> None:
        if self._thread is not None:
            assert self._sink is not None
            self._thread.run(self._sink.close())
            self._thread.stop()
            self._thread = None
        if self._child is not None:
            assert self._conn is not None
            try:
                self._conn.send(None)
                if self._conn.poll(10):
                    self.messages = self._conn.recv()
            except (OSError, EOFError):
                pass  # the child died: report counts, not kept messages
            self._child.join(10)
            if self._child.is_alive():
                self._child.kill()
                self._child.join()
            self._conn.close()
            self._child = None

    def __enter__(self) -> SinkServer:
        return self.start()

    def __exit__(
        self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
