"""A scripted, fault-injecting ESMTP server on loopback, for tests of mailout's SMTP client.

By default it is a correct server (PIPELINING, CHUNKING, 8BITMIME, SMTPUTF8, SIZE,
ENHANCEDSTATUSCODES, STARTTLS, AUTH PLAIN LOGIN) that records everything it receives; a
`Script` (see `tests.servers.script`) makes it misbehave on cue::

    script = Script(rules=[Rule(r"RCPT TO:<bad@", reply="550 5.1.1 no such user")])
    with FaultyServer(script) as srv:
        ...  # connect to srv.host, srv.port; STARTTLS trusts srv.client_context()
    srv.transactions, srv.commands, srv.connections

Input is read in whatever pieces the network delivers; every complete line is answered in
order and the replies to one batch are written together (one write per round trip).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import re
import ssl
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Literal

import trustme

from tests.servers._loop import LoopThread
from tests.servers.script import Rule, Script, Transaction, format_reply

__all__ = ["FaultyServer", "Rule", "Script", "Transaction"]

_READ_SIZE = 65536
_MAIL_FROM = re.compile(r"FROM:\s*<([^>]*)>\s*(.*)", re.IGNORECASE | re.DOTALL)
_RCPT_TO = re.compile(r"TO:\s*<([^>]*)>\s*(.*)", re.IGNORECASE | re.DOTALL)
_BDAT = re.compile(r"(\d+)(\s+LAST)?\s*", re.IGNORECASE)
_MASK = "****"


@functools.cache
def _certificate() -> tuple[trustme.CA, trustme.LeafCert]:
    """One CA and leaf certificate per test session: issuing them is the slow part of TLS."""
    ca = trustme.CA()
    return ca, ca.issue_cert("localhost", "127.0.0.1", "faulty.test")


class _Closed(Exception):
    """The session is over (QUIT, a closing rule, or the client went away)."""


class FaultyServer:
    """A scripted ESMTP server in a background thread; use it as a context manager.

    Attributes: `host`, `port`, `script`, `ca` (the `trustme.CA` that signed the STARTTLS
    certificate), `transactions` (accepted messages, in order), `commands` (every command
    line, AUTH credentials masked as ``****``), `connections` (count accepted so far),
    `errors` (unexpected exceptions raised inside the server; a test may assert it is empty).
    """

    def __init__(self, script: Script | None = None, *, host: str = "127.0.0.1") -> None:
        self.script = script or Script()
        self.host = host
        self.port = 0
        self.ca, self._leaf = _certificate()
        self.transactions: list[Transaction] = []
        self.commands: list[str] = []
        self.connections = 0
        self.errors: list[BaseException] = []
        self._seen = [0] * len(self.script.rules)
        self._tasks: set[asyncio.Task[None]] = set()
        self._together: asyncio.Event | None = None  # Script.greet_together reached
        self._thread: LoopThread | None = None
        self._server: asyncio.Server | None = None

    def client_context(self) -> ssl.SSLContext:
        """An SSL context for clients that trusts this server's certificate."""
        ctx = ssl.create_default_context()
        self.ca.configure_trust(ctx)
        return ctx

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._leaf.configure_cert(ctx)
        return ctx

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FaultyServer:
        self._thread = LoopThread("FaultyServer")
        self._server = self._thread.run(asyncio.start_server(self._serve, self.host, 0))
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._thread.run(self._shutdown())
            self._thread.stop()
            self._thread = None

    async def _shutdown(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def __enter__(self) -> FaultyServer:
        return self.start()

    def __exit__(
        self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- script ------------------------------------------------------------------------------

    def rule_for(self, line: str) -> Rule | None:
        """The first armed rule matching `line`, counting the match against every rule seen."""
        for i, rule in enumerate(self.script.rules):
            if not rule.matches(line):
                continue
            self._seen[i] += 1
            armed = self._seen[i] - rule.after
            if armed >= 1 and (rule.times is None or armed <= rule.times):
                return rule
        return None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        if self._together is None:
            self._together = asyncio.Event()
        if len(self._tasks) >= self.script.greet_together:
            self._together.set()
        try:
            await _Session(self, reader, writer).run()
        except (_Closed, ConnectionError, ssl.SSLError, asyncio.CancelledError):
            pass
        except Exception as exc:  # surfaced to the test through srv.errors
            self.errors.append(exc)
        finally:
            self._tasks.discard(task)
            writer.close()


class _Session:
    """One SMTP connection: a line buffer, pending replies and the transaction state."""

    def __init__(
        self, srv: FaultyServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.srv, self.script, self.reader, self.writer = srv, srv.script, reader, writer
        self.buf = bytearray()
        self.out: list[bytes] = []
        self.tls = False
        self.user: str | None = None
        self.helo = False
        self.reset()

    def reset(self) -> None:
        self.sender: str | None = None
        self.params: tuple[str, ...] = ()
        self.recipients: list[str] = []
        self.chunks = bytearray()

    # -- I/O ---------------------------------------------------------------------------------

    def queue(self, reply: bytes | str) -> None:
        self.out.append(format_reply(reply) if isinstance(reply, str) else reply)

    async def flush(self) -> None:
        if not self.out:
            return
        if self.script.delay:
            await asyncio.sleep(self.script.delay)
        self.writer.write(b"".join(self.out))
        self.out.clear()
        await self.writer.drain()

    async def fill(self) -> None:
        """Answer what is pending, then wait for more input (raise `_Closed` at EOF)."""
        await self.flush()
        data = await self.reader.read(_READ_SIZE)
        if not data:
            raise _Closed
        self.buf += data

    async def read_line(self, limit: int | None = None) -> bytes:
        """The next CRLF-terminated line, CRLF included (RFC 5321 §2.3.8: CRLF only)."""
        while (end := self.buf.find(b"\r\n")) < 0:
            if limit is not None and len(self.buf) >= limit:
                raise _Closed
            await self.fill()
        line = bytes(self.buf[: end + 2])
        del self.buf[: end + 2]
        return line

    async def read_exact(self, size: int, limit: int | None = None) -> bytes:
        while len(self.buf) < size:
            if limit is not None and len(self.buf) >= limit:
                raise _Closed  # Rule.drop_after: vanish mid-chunk
            await self.fill()
        chunk = bytes(self.buf[:size])
        del self.buf[:size]
        return chunk

    async def hang(self) -> None:
        """Never answer: swallow input until the client leaves or the server stops."""
        await self.flush()
        while await self.reader.read(_READ_SIZE):
            pass
        raise _Closed

    # -- dispatch ----------------------------------------------------------------------------

    async def run(self) -> None:
        greeting = self.script.greeting_bytes
        if self.script.greet_together:
            assert self.srv._together is not None
            await self.srv._together.wait()
        if greeting is None:
            await self.hang()
            return
        self.queue(greeting)
        await self.flush()
        if greeting.startswith(b"421"):
            return
        while True:
            raw = await self.read_line()
            line = raw[:-2].decode("utf-8", "surrogateescape")
            verb, _, arg = line.partition(" ")
            verb = verb.upper()
            self.srv.commands.append(
                f"AUTH {arg.split(' ')[0]} {_MASK}" if verb == "AUTH" else line
            )
            rule = self.srv.rule_for(line)
            if verb == "BDAT" and self.offers("CHUNKING") and (m := _BDAT.fullmatch(arg)):
                # RFC 3030 §2: the chunk follows the command whatever the answer, so read it
                # before answering (a refusal must not leave it to be parsed as commands).
                limit = rule.drop_after if rule else None
                chunk = await self.read_exact(int(m[1]), limit)
                await self.respond(rule, line, functools.partial(self.bdat, chunk, bool(m[2])))
            else:
                handler = getattr(self, f"smtp_{verb}", self.smtp_unknown)
                await self.respond(rule, line, functools.partial(handler, arg))

    async def respond(
        self, rule: Rule | None, line: str, normal: Callable[[Rule | None], Awaitable[None]]
    ) -> None:
        """Answer `line` normally, or as `rule` says."""
        if rule is None:
            await normal(None)
        else:
            if rule.action == "drop":
                await self.flush()
                raise _Closed
            if rule.action == "hang":
                await self.hang()
            if rule.delay:
                await self.flush()
                await asyncio.sleep(rule.delay)
            if rule.raw is not None:
                self.queue(rule.raw)
            elif rule.reply is not None:
                self.queue(rule.reply)
                if line.upper().startswith("BDAT") or line == ".":
                    self.reset()  # a refused end of message, or refused chunk, ends it
            else:
                await normal(rule)
            if rule.action == "lose":
                self.out.clear()  # processed, but the client never hears of it
                raise _Closed
            if rule.extra and not line.upper().startswith("DATA"):  # DATA sends it after 354
                self.queue(rule.extra)
            if rule.closes:
                await self.flush()
                raise _Closed
        if self.script.lockstep:
            await self.flush()

    def offers(self, keyword: str) -> bool:
        return keyword in self.script.keywords()

    async def smtp_EHLO(self, arg: str, _: Rule | None) -> None:
        self.helo = True
        self.reset()
        self.queue("\n".join([f"250 {self.script.hostname}", *self.script.extensions]))

    async def smtp_HELO(self, arg: str, _: Rule | None) -> None:
        self.helo = True
        self.reset()
        self.queue(f"250 {self.script.hostname}")

    async def smtp_NOOP(self, arg: str, _: Rule | None) -> None:
        self.queue("250 2.0.0 OK")

    async def smtp_RSET(self, arg: str, _: Rule | None) -> None:
        self.reset()
        self.queue("250 2.0.0 OK")

    async def smtp_VRFY(self, arg: str, _: Rule | None) -> None:
        self.queue("252 2.1.5 Cannot VRFY user")

    async def smtp_QUIT(self, arg: str, _: Rule | None) -> None:
        self.queue("221 2.0.0 Bye")
        await self.flush()
        raise _Closed

    async def smtp_STARTTLS(self, arg: str, _: Rule | None) -> None:
        if not self.offers("STARTTLS") or self.tls:
            self.queue("502 5.5.1 STARTTLS not available")
            return
        self.queue(b"220 2.0.0 Ready to start TLS\r\n" + self.script.starttls_inject)
        await self.flush()
        # RFC 3207 §4.2: anything the client pipelined after STARTTLS is discarded, and the
        # session starts over (a new EHLO is required).
        self.buf.clear()
        await self.writer.start_tls(self.srv.server_context())
        self.tls, self.helo, self.user = True, False, None
        self.reset()

    async def smtp_AUTH(self, arg: str, _: Rule | None) -> None:
        mechanism, _sp, initial = arg.partition(" ")
        mechanism = mechanism.upper()
        if not self.offers("AUTH") or self.user is not None or self.sender is not None:
            self.queue("503 5.5.1 AUTH not allowed now")
            return
        try:
            if mechanism == "PLAIN":
                answer = initial or await self.challenge("")
                _authz, user, password = _b64(answer).split("\0")
            elif mechanism == "LOGIN":
                user = _b64(initial or await self.challenge("VXNlcm5hbWU6"))
                password = _b64(await self.challenge("UGFzc3dvcmQ6"))
            else:
                self.queue("504 5.5.4 Unrecognized authentication type")
                return
        except _Cancelled:
            self.queue("501 5.7.0 Authentication cancelled")
            return
        except (ValueError, binascii.Error):
            self.queue("501 5.5.2 Cannot decode response")
            return
        if self.script.users.get(user) != password:
            self.queue("535 5.7.8 Authentication credentials invalid")
            return
        self.user = user
        self.queue("235 2.7.0 Authentication successful")

    async def challenge(self, prompt: str) -> str:
        self.queue(f"334 {prompt}")
        answer = (await self.read_line())[:-2].decode("ascii", "replace")
        self.srv.commands.append(_MASK)
        if answer == "*":
            raise _Cancelled
        return answer

    async def smtp_MAIL(self, arg: str, _: Rule | None) -> None:
        m = _MAIL_FROM.fullmatch(arg)
        if not self.helo or self.sender is not None:
            self.queue("503 5.5.1 Bad sequence of commands")
        elif m is None:
            self.queue("501 5.5.4 Syntax: MAIL FROM:<address>")
        else:
            params = tuple(m[2].split())
            size = next((p[5:] for p in params if p.upper().startswith("SIZE=")), "0")
            limit = self.script.max_size()
            if limit is not None and size.isdigit() and int(size) > limit:
                self.queue("552 5.3.4 Message size exceeds fixed limit")
            elif not m[1].isascii() and "SMTPUTF8" not in (p.upper() for p in params):
                self.queue("553 5.6.7 SMTPUTF8 required for this address")  # RFC 6531 §3.4
            else:
                self.sender, self.params = m[1], params
                self.queue("250 2.1.0 OK")

    async def smtp_RCPT(self, arg: str, _: Rule | None) -> None:
        m = _RCPT_TO.fullmatch(arg)
        if self.sender is None:
            self.queue("503 5.5.1 Need MAIL before RCPT")
        elif m is None:
            self.queue("501 5.5.4 Syntax: RCPT TO:<address>")
        else:
            self.recipients.append(m[1])
            self.queue("250 2.1.5 OK")

    async def smtp_DATA(self, arg: str, rule: Rule | None) -> None:
        if self.sender is None or self.chunks:
            self.queue("503 5.5.1 Bad sequence of commands")
            return
        if not self.recipients and not self.script.data_without_recipients:
            self.queue("554 5.5.1 No valid recipients")
            return
        self.queue("354 End data with <CR><LF>.<CR><LF>")
        if rule is not None and rule.extra:
            self.queue(rule.extra)  # an early reply: before the content was even read
        drop_after = rule.drop_after if rule is not None else None
        content, received = bytearray(), 0
        limit = drop_after
        while (line := await self.read_line(limit)) != b".\r\n":
            received += len(line)
            if drop_after is not None and received >= drop_after:
                raise _Closed  # Rule.drop_after: vanish mid-DATA
            # RFC 5321 §4.5.2: a leading dot was doubled by the client
            content += line[1:] if line.startswith(b".") else line
            if drop_after is not None:
                limit = drop_after - received
        end = self.srv.rule_for(".")
        if not self.recipients:  # RFC 2920 §3.1: 354 came despite no recipient
            self.reset()
            await self.respond(end, ".", lambda _: self._queue("554 5.5.1 No valid recipients"))
            return
        await self.respond(end, ".", lambda _: self.accept(bytes(content), "DATA"))

    async def _queue(self, reply: str) -> None:
        self.queue(reply)

    async def smtp_BDAT(self, arg: str, _: Rule | None) -> None:
        # Only reached when BDAT is not offered or malformed; run() handles the real thing.
        if not self.offers("CHUNKING"):
            self.queue("502 5.5.1 BDAT not supported")
        else:
            self.queue("501 5.5.4 Syntax: BDAT size [LAST]")

    async def bdat(self, chunk: bytes, last: bool, _: Rule | None) -> None:
        if self.sender is None or not self.recipients:
            self.queue("503 5.5.1 Bad sequence of commands")  # RFC 3030 §2: chunk discarded
        elif last:
            self.chunks += chunk
            await self.accept(bytes(self.chunks), "BDAT")
        else:
            self.chunks += chunk
            self.queue(f"250 2.0.0 {len(chunk)} octets received")

    async def smtp_unknown(self, arg: str, _: Rule | None) -> None:
        self.queue("500 5.5.2 Command unrecognized")

    async def accept(self, content: bytes, method: Literal["DATA", "BDAT"]) -> None:
        assert self.sender is not None
        self.srv.transactions.append(
            Transaction(
                self.sender,
                tuple(self.recipients),
                content,
                method,
                self.params,
                self.tls,
                self.user,
            )
        )
        self.reset()
        self.queue(f"250 2.0.0 OK: queued as {len(self.srv.transactions)}")


class _Cancelled(Exception):
    """The client answered ``*`` to an AUTH challenge (RFC 4954 §4)."""


def _b64(text: str) -> str:
    return base64.b64decode(text, validate=True).decode("utf-8")
