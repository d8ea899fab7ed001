"""A blocking socket byte stream with timeouts and STARTTLS, for the generated sync client."""

from __future__ import annotations

import contextlib
import socket
import ssl
import time

from mailout.exceptions import (
    ServerDisconnected,
    SMTPConnectError,
    SMTPTimeoutError,
    SMTPTLSError,
)
from mailout.smtp._streams import READ_SIZE

__all__ = ["SyncStream", "open_sync_stream"]


def _translate(exc: BaseException, action: str) -> Exception:
    if isinstance(exc, TimeoutError):  # socket.timeout is TimeoutError since Python 3.10
        return SMTPTimeoutError(f"timed out while {action}")
    if isinstance(exc, ssl.SSLError):
        return SMTPTLSError(f"TLS failed while {action}: {exc}")
    return SMTPConnectError(f"connection failed while {action}: {exc}")


class SyncStream:
    """A connected socket; ``read`` returns whatever arrived, never empty (EOF raises).

    ``written`` is how many bytes of the last ``write()`` the operating system took: all of
    them, unless it failed (the rest was never sent).
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.written = 0

    @property
    def local_address(self) -> str:
        return str(self._sock.getsockname()[0])

    def read(self, timeout: float | None) -> bytes:
        if timeout is not None and timeout <= 0:  # settimeout(0) would mean non-blocking
            raise SMTPTimeoutError("timed out while waiting for a reply")
        try:
            self._sock.settimeout(timeout)
            data = self._sock.recv(READ_SIZE)
        except OSError as exc:
            raise _translate(exc, "waiting for a reply") from exc
        if not data:
            raise ServerDisconnected("the server closed the connection")
        return data

    def poll(self) -> bytes:
        """What has arrived and not been read yet, without waiting (``b""`` if nothing)."""
        sock = self._sock
        timeout = sock.gettimeout()
        try:
            sock.settimeout(0.0)
            return sock.recv(READ_SIZE)  # b"" at EOF: the next read() reports it
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError, InterruptedError):
            return b""  # nothing (over TLS: perhaps a record with no application data)
        except OSError:
            return b""  # a broken socket: the next read() or write() reports it
        finally:
            sock.settimeout(timeout)

    def write(self, data: bytes, timeout: float | None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        view = memoryview(data)
        self.written = 0
        try:
            # sendall() would apply the timeout per send() call; this bounds the whole write.
            self._sock.settimeout(timeout)
            while view:
                if deadline is not None:
                    self._sock.settimeout(max(deadline - time.monotonic(), 0.001))
                sent = self._sock.send(view)
                view = view[sent:]
                self.written += sent
        except OSError as exc:
            raise _translate(exc, "writing") from exc

    def start_tls(
        self, context: ssl.SSLContext, server_hostname: str, timeout: float | None
    ) -> None:
        """Upgrade to TLS. RFC 3207 §4.2: we hold no read buffer here; the core drops its own."""
        try:
            self._sock.settimeout(timeout)
            self._sock = context.wrap_socket(self._sock, server_hostname=server_hostname)
        except OSError as exc:
            self.close()
            raise _translate(exc, "starting TLS") from exc

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()


def open_sync_stream(
    host: str,
    port: int,
    *,
    timeout: float | None,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
) -> SyncStream:
    """Connect (with implicit TLS when ``ssl_context`` is given) within ``timeout`` seconds."""
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        raise _translate(exc, f"connecting to {host}:{port}") from exc
    stream = SyncStream(sock)
    if ssl_context is not None:
        stream.start_tls(ssl_context, server_hostname or host, timeout)
    return stream
