"""A raw SMTP client socket for tests that need exact bytes: pipelining, BDAT, injection."""

from __future__ import annotations

import socket
import ssl
from types import TracebackType


class RawClient:
    """A blocking socket that sends bytes as given and reads replies one at a time.

    `reply()` returns ``(code, lines)`` of the next complete (possibly multiline) reply;
    `received` holds every byte read so far, so a test can see exactly what the server sent.
    """

    def __init__(self, host: str, port: int, timeout: float = 5.0) -> None:
        self.sock: socket.socket = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.received = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv(self) -> bytes:
        """One read from the socket ('' at EOF), also kept in `buf` for `reply()`."""
        data = self.sock.recv(65536)
        self.buf += data
        self.received += data
        return data

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            if not self.recv():
                raise ConnectionError(f"connection closed; unterminated data: {self.buf!r}")
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def reply(self) -> tuple[int, list[str]]:
        lines = []
        while True:
            line = self.line()
            lines.append(line[4:].decode("utf-8", "replace"))
            if line[3:4] != b"-":
                return int(line[:3]), lines

    def codes(self, n: int) -> list[int]:
        return [self.reply()[0] for _ in range(n)]

    def closed_by_peer(self) -> bool:
        """True if the server closed the connection (reads EOF or reset)."""
        try:
            return self.recv() == b""
        except ConnectionResetError:
            return True

    def starttls(self, context: ssl.SSLContext, server_hostname: str = "127.0.0.1") -> None:
        """Start TLS, discarding anything buffered in plaintext (RFC 3207 §4.2)."""
        self.buf = b""
        self.sock = context.wrap_socket(self.sock, server_hostname=server_hostname)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(
        self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
