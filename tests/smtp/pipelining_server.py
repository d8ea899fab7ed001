"""A small SMTP server for tests that really pipelines: PIPELINING, CHUNKING, SMTPUTF8 and more.

aiosmtpd advertises neither PIPELINING nor CHUNKING, so this server exists to test those paths of
the client over a real loopback socket. It runs its own asyncio loop in a background thread,
reads commands as a stream (so a pipelined burst is answered command by command, in order),
stores what it accepted, and can refuse given senders and recipients with given replies.
"""

from __future__ import annotations

import asyncio
import re
import threading
from dataclasses import dataclass, field

EXTENSIONS = ("PIPELINING", "CHUNKING", "8BITMIME", "SMTPUTF8", "SIZE 10485760",
              "ENHANCEDSTATUSCODES")  # fmt: skip


@dataclass
class Received:
    sender: str
    recipients: list[str]
    content: bytes
    mail_params: list[str]
    via: str  # "DATA" or "BDAT"


@dataclass
class _Session:
    sender: str | None = None
    params: list[str] = field(default_factory=list)
    recipients: list[str] = field(default_factory=list)
    chunks: bytearray = field(default_factory=bytearray)
    bdat_failed: bool = False


_PATH = re.compile(r"(?i)(MAIL FROM|RCPT TO):<([^>]*)>((?: [^ ]+)*)\Z")


class PipeliningServer:
    """Start with ``start()`` (returns the port), stop with ``stop()``; or use ``with``."""

    def __init__(
        self,
        *,
        extensions: tuple[str, ...] = EXTENSIONS,
        reject_senders: dict[str, str] | None = None,
        reject_recipients: dict[str, str] | None = None,
        data_despite_no_recipients: bool = False,
        reject_content: str | None = None,
        close_on_mail: bool = False,
        host: str = "127.0.0.1",
        stall_on_mail: bool = False,
        reply_delay: float = 0.0,
    ) -> None:
        self.host = host
        self.stall_on_mail = stall_on_mail
        # Flush and pause after each reply: a server that advertises PIPELINING but answers
        # strictly one command at a time, its replies arriving in separate segments.
        self.reply_delay = reply_delay
        self.extensions = extensions
        # address -> full reply line, e.g. "550 5.1.1 No such user"
        self.reject_senders = reject_senders or {}
        self.reject_recipients = reject_recipients or {}
        # RFC 2920 §3.1 warns that a server may answer DATA with 354 even with no recipient.
        self.data_despite_no_recipients = data_despite_no_recipients
        self.reject_content = reject_content
        self.close_on_mail = close_on_mail
        self.messages: list[Received] = []
        self.commands: list[str] = []
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    def __enter__(self) -> PipeliningServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> int:
        self._thread = threading.Thread(target=self._run, name="pipelining-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("test server did not start")
        return self.port

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    async def _shutdown(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._server = loop.run_until_complete(
            asyncio.start_server(self._handle, self.host, 0, limit=1 << 20)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(asyncio.sleep(0.01))  # let closed transports finish
            loop.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._session(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        def reply(line: str) -> None:
            writer.write(line.encode() + b"\r\n")

        reply("220 pipelining.test ESMTP ready")
        session = _Session()
        while True:
            raw = await reader.readline()
            if not raw:
                return
            line = raw.rstrip(b"\r\n").decode("utf-8", "replace")
            self.commands.append(line)
            verb = line.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                session = _Session()
                if verb == "HELO":
                    reply("250 pipelining.test")
                else:
                    lines = ["pipelining.test", *self.extensions]
                    for text in lines[:-1]:
                        reply(f"250-{text}")
                    reply(f"250 {lines[-1]}")
            elif verb == "MAIL":
                match = _PATH.match(line)
                if self.stall_on_mail:
                    await asyncio.sleep(3600)
                if self.close_on_mail:
                    reply("421 4.3.2 going down")
                    await writer.drain()
                    return
                if match is None:
                    reply("501 5.5.4 syntax")
                elif session.sender is not None:
                    reply("503 5.5.1 nested MAIL")
                elif match[2] in self.reject_senders:
                    reply(self.reject_senders[match[2]])
                else:
                    session.sender = match[2]
                    session.params = match[3].split()
                    reply("250 2.1.0 sender ok")
            elif verb == "RCPT":
                match = _PATH.match(line)
                if session.sender is None:
                    reply("503 5.5.1 need MAIL")
                elif match is None:
                    reply("501 5.5.4 syntax")
                elif match[2] in self.reject_recipients:
                    reply(self.reject_recipients[match[2]])
                else:
                    session.recipients.append(match[2])
                    reply("250 2.1.5 recipient ok")
            elif verb == "DATA":
                if session.sender is None:
                    reply("503 5.5.1 need MAIL")
                    continue
                if not session.recipients and not self.data_despite_no_recipients:
                    reply("554 5.5.1 no valid recipients")
                    continue
                reply("354 go ahead")
                content = await self._read_data(reader)
                if not session.recipients:
                    reply("554 5.5.1 no valid recipients")
                elif self.reject_content is not None:
                    reply(self.reject_content)
                else:
                    self._store(session, content, "DATA")
                    reply("250 2.0.0 queued")
                session = _Session()
            elif verb == "BDAT":
                parts = line.split()
                size = int(parts[1])
                last = len(parts) > 2 and parts[2].upper() == "LAST"
                # RFC 3030 §2: the chunk is read even when the command fails.
                chunk = await reader.readexactly(size)
                if session.sender is None or not session.recipients or session.bdat_failed:
                    session.bdat_failed = True
                    reply("503 5.5.1 no valid transaction")
                    if last:
                        session = _Session()
                    continue
                session.chunks += chunk
                if not last:
                    reply(f"250 2.0.0 {size} octets received")
                    continue
                if self.reject_content is not None:
                    reply(self.reject_content)
                else:
                    self._store(session, bytes(session.chunks), "BDAT")
                    reply("250 2.0.0 queued")
                session = _Session()
            elif verb == "RSET":
                session = _Session()
                reply("250 2.0.0 reset")
            elif verb == "NOOP":
                reply("250 2.0.0 ok")
            elif verb == "QUIT":
                reply("221 2.0.0 bye")
                await writer.drain()
                return
            else:
                reply("500 5.5.2 unknown command")
            await writer.drain()
            if self.reply_delay:
                await asyncio.sleep(self.reply_delay)

    @staticmethod
    async def _read_data(reader: asyncio.StreamReader) -> bytes:
        lines: list[bytes] = []
        while True:
            raw = await reader.readuntil(b"\r\n")
            if raw == b".\r\n":
                return b"".join(lines)
            # RFC 5321 §4.5.2: remove the stuffed dot.
            lines.append(raw[1:] if raw.startswith(b".") else raw)

    def _store(self, session: _Session, content: bytes, via: str) -> None:
        assert session.sender is not None
        self.messages.append(
            Received(session.sender, list(session.recipients), content, session.params, via)
        )
