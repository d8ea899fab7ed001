"""An asyncio byte stream (a small Protocol with a buffer) with timeouts and STARTTLS."""

from __future__ import annotations

import asyncio
import ssl

from mailout.exceptions import (
    ServerDisconnected,
    SMTPConnectError,
    SMTPTimeoutError,
    SMTPTLSError,
)

__all__ = ["AsyncStream", "open_async_stream"]


# How long a polite close (TLS close_notify) may take before the socket is simply dropped.
_CLOSE_TIMEOUT = 2.0


class _Protocol(asyncio.Protocol):
    """Buffers what arrives; parsing is the core's job, never done here."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.eof = False
        self.error: BaseException | None = None
        self._read_waiter: asyncio.Future[None] | None = None
        self._drain_waiter: asyncio.Future[None] | None = None
        self._paused = False
        self.closed = asyncio.get_running_loop().create_future()

    def _wake(self) -> None:
        waiter, self._read_waiter = self._read_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.error = exc
        self._wake()
        self.resume_writing()
        if not self.closed.done():
            self.closed.set_result(None)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait_readable(self) -> None:
        if self.buffer or self.eof:
            return
        self._read_waiter = asyncio.get_running_loop().create_future()
        await self._read_waiter

    async def drain(self) -> None:
        if self._paused and not self.eof:
            self._drain_waiter = asyncio.get_running_loop().create_future()
            await self._drain_waiter


def _translate(exc: BaseException, action: str) -> Exception:
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return SMTPTimeoutError(f"timed out while {action}")
    if isinstance(exc, ssl.SSLError):
        return SMTPTLSError(f"TLS failed while {action}: {exc}")
    return SMTPConnectError(f"connection failed while {action}: {exc}")


class AsyncStream:
    """A connected stream; ``read`` returns whatever arrived, never empty (EOF raises).

    ``written`` is how many bytes of the last ``write()`` left this process: all of them,
    unless it failed, in which case the rest was discarded and never reaches the server.
    """

    def __init__(self, transport: asyncio.Transport, protocol: _Protocol) -> None:
        self._transport = transport
        self._protocol = protocol
        self.written = 0

    @property
    def local_address(self) -> str:
        return str(self._transport.get_extra_info("sockname")[0])

    async def read(self, timeout: float | None) -> bytes:
        protocol = self._protocol
        try:
            async with asyncio.timeout(timeout):
                await protocol.wait_readable()
        except TimeoutError as exc:
            raise _translate(exc, "waiting for a reply") from None
        if protocol.buffer:
            data = bytes(protocol.buffer)
            protocol.buffer.clear()
            return data
        if protocol.error is not None:
            raise _translate(protocol.error, "reading") from protocol.error
        raise ServerDisconnected("the server closed the connection")

    def poll(self) -> bytes:
        """What has arrived and not been read yet, without waiting (``b""`` if nothing)."""
        data = bytes(self._protocol.buffer)
        self._protocol.buffer.clear()
        return data

    async def write(self, data: bytes, timeout: float | None) -> None:
        self.written = 0
        if self._transport.is_closing():
            raise ServerDisconnected("the connection is closed")
        transport = self._transport
        transport.write(data)
        try:
            async with asyncio.timeout(timeout):
                await self._protocol.drain()
        except BaseException as exc:
            # What is still buffered never left: abort (not close, which would flush it) so
            # that it never does, and `written` stays true. The caller decides from it which
            # messages the server may have received whole.
            self.written = len(data) - min(len(data), transport.get_write_buffer_size())
            transport.abort()
            if isinstance(exc, TimeoutError):
                raise _translate(exc, "writing") from None
            raise
        self.written = len(data)

    async def start_tls(
        self, context: ssl.SSLContext, server_hostname: str, timeout: float | None
    ) -> None:
        """Upgrade to TLS. RFC 3207 §4.2: plaintext buffered before the handshake is dropped."""
        self._protocol.buffer.clear()
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport = await loop.start_tls(
                    self._transport, self._protocol, context, server_hostname=server_hostname
                )
        except (OSError, TimeoutError) as exc:
            self._transport.abort()
            raise _translate(exc, "starting TLS") from exc
        if transport is None:  # only when the connection closed during the handshake
            raise ServerDisconnected("the server closed the connection during the TLS handshake")
        self._transport = transport

    async def aclose(self) -> None:
        """Close and wait until the socket is really closed (a TLS close takes a round trip)."""
        self._transport.close()
        try:
            async with asyncio.timeout(_CLOSE_TIMEOUT):
                await asyncio.shield(self._protocol.closed)
        except TimeoutError:
            self._transport.abort()


async def open_async_stream(
    host: str,
    port: int,
    *,
    timeout: float | None,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
) -> AsyncStream:
    """Connect (with implicit TLS when ``ssl_context`` is given) within ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            transport, protocol = await loop.create_connection(
                _Protocol,
                host,
                port,
                ssl=ssl_context,
                server_hostname=server_hostname if ssl_context is not None else None,
            )
    except (OSError, TimeoutError) as exc:
        raise _translate(exc, f"connecting to {host}:{port}") from exc
    return AsyncStream(transport, protocol)
