"""What a client can make the catcher hold is bounded by --max-size plus a constant.

The catcher runs as `mailout serve` in a subprocess; a raw socket sends 300 MiB with no line
break, in DATA, in the command phase and as a BDAT chunk, and an over-size message of ordinary
lines; the catcher's peak RSS (VmHWM in /proc/PID/status) is read before and after each.

The margin: 16 MiB over --max-size. What the catcher may hold for one connection is the
message so far (at most --max-size), one line (at most LINE_LIMIT, 1 MiB), the stream
reader's buffer (at most twice LINE_LIMIT) and a read or two; the rest is allocator slack.
(Before the fix, the DATA case grew the catcher by ~293 MiB: aiosmtpd keeps every fragment of
a line that never ends.)
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

MAX_SIZE = 10_000_000
MARGIN = 16 * 1024 * 1024  # > 3 * LINE_LIMIT (mailout.catcher.smtp) plus slack
HOSTILE_MIB = 300
CHUNK = b"x" * (1 << 20)

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/status").exists(), reason="reads the catcher's RSS from /proc"
)


def peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc status")


class Client:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.file = self.sock.makefile("rb")
        assert self.reply().startswith(b"220")
        self.sock.sendall(b"EHLO test\r\n")
        assert self.reply().startswith(b"250")

    def reply(self) -> bytes:
        lines = [self.file.readline()]
        while lines[-1][3:4] == b"-":
            lines.append(self.file.readline())
        return b"".join(lines)

    def command(self, line: bytes) -> bytes:
        self.sock.sendall(line)
        return self.reply()

    def flood(self, mib: int) -> None:
        for _ in range(mib):
            self.sock.sendall(CHUNK)

    def close(self) -> None:
        self.file.close()
        self.sock.close()


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[int, int]]:
    """(pid, SMTP port) of a `mailout serve --max-size 10000000`, warmed up."""
    process = subprocess.Popen(
        [sys.executable, "-m", "mailout", "serve", "--smtp", "127.0.0.1:0", "--http", "off",
         "--max-size", str(MAX_SIZE), "--quiet"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.startswith("SMTP listening on "), line
    port = int(line.rsplit(":", 1)[1])
    # One ordinary message first, so that what every message costs is in the baseline.
    client = Client(port)
    assert client.command(b"MAIL FROM:<a@x.test>\r\n").startswith(b"250")
    assert client.command(b"RCPT TO:<b@x.test>\r\n").startswith(b"250")
    assert client.command(b"DATA\r\n").startswith(b"354")
    body = b"Subject: warm-up\r\n\r\n" + b"an ordinary line\r\n" * 50_000 + b".\r\n"
    assert client.command(body).startswith(b"250")
    client.close()
    yield process.pid, port
    process.terminate()
    process.wait(10)
    process.stdout.close()


def grows_by(pid: int, action: object) -> int:
    before = peak_rss(pid)
    assert callable(action)
    action()
    return peak_rss(pid) - before


def test_a_data_line_without_crlf(served: tuple[int, int]) -> None:
    pid, port = served
    client = Client(port)
    for line in (b"MAIL FROM:<a@x.test>\r\n", b"RCPT TO:<b@x.test>\r\n", b"DATA\r\n"):
        client.command(line)
    growth = grows_by(pid, lambda: client.flood(HOSTILE_MIB))
    assert client.command(b"\r\n.\r\n").startswith(b"500 5.5.2 Line too long")
    assert client.command(b"NOOP\r\n").startswith(b"250")  # the session goes on
    client.close()
    print(f"DATA: {HOSTILE_MIB} MiB without CRLF grew the peak RSS by {growth / 2**20:.1f} MiB")
    assert growth < MAX_SIZE + MARGIN


def test_a_command_line_without_crlf(served: tuple[int, int]) -> None:
    pid, port = served
    client = Client(port)
    growth = grows_by(pid, lambda: client.flood(HOSTILE_MIB))
    assert client.command(b"\r\n").startswith(b"500")
    client.close()
    print(f"command: {HOSTILE_MIB} MiB without CRLF grew the peak RSS by {growth / 2**20:.1f} MiB")
    assert growth < MAX_SIZE + MARGIN


def test_a_bdat_chunk_over_the_limit(served: tuple[int, int]) -> None:
    pid, port = served
    client = Client(port)
    client.command(b"MAIL FROM:<a@x.test>\r\n")
    client.command(b"RCPT TO:<b@x.test>\r\n")
    client.sock.sendall(b"BDAT %d LAST\r\n" % (HOSTILE_MIB << 20))
    growth = grows_by(pid, lambda: client.flood(HOSTILE_MIB))
    assert client.reply().startswith(b"552 5.3.4")
    client.close()
    print(f"BDAT: a {HOSTILE_MIB} MiB chunk grew the peak RSS by {growth / 2**20:.1f} MiB")
    assert growth < MAX_SIZE + MARGIN


def test_data_over_max_size_in_ordinary_lines(served: tuple[int, int]) -> None:
    pid, port = served
    client = Client(port)
    for line in (b"MAIL FROM:<a@x.test>\r\n", b"RCPT TO:<b@x.test>\r\n", b"DATA\r\n"):
        client.command(line)
    lines = (b"y" * 998 + b"\r\n") * 1024  # 1 MiB of ordinary lines

    def flood() -> None:
        for _ in range(3 * MAX_SIZE // len(lines)):
            client.sock.sendall(lines)

    growth = grows_by(pid, flood)
    assert client.command(b".\r\n").startswith(b"552 5.3.4")
    client.close()
    print(f"DATA: 3x --max-size in lines grew the peak RSS by {growth / 2**20:.1f} MiB")
    assert growth < MAX_SIZE + MARGIN
