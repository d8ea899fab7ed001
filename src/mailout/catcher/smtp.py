"""The catcher's SMTP side: aiosmtpd, extended with CHUNKING (BDAT) and enhanced status codes.

aiosmtpd reads commands line by line, so PIPELINING works as it is; what it lacks we add here:

- ``BDAT`` (RFC 3030): each chunk is read exactly, never dot-unstuffed; ``LAST`` ends the message.
  The chunk is always consumed, even when refused, so its bytes can never be taken for commands.
- ``ENHANCEDSTATUSCODES`` (RFC 2034): after EHLO every 2xx/4xx/5xx reply carries a status code;
  aiosmtpd's own replies that lack one get it added in ``push()``.
- ``MAIL FROM:<>`` (the null sender of bounces, RFC 5321 §4.5.5), which aiosmtpd refuses.
- AUTH only when asked for (accept any credentials, or check a users file), plain text allowed:
  this is a local test server, and the apps it tests must be able to log in to it.

The message is stored exactly as received, with one ``Received:`` line added at the top.

What a client can make it hold is bounded: DATA is read here rather than by aiosmtpd (which
keeps every fragment of a line that never ends), into one buffer of at most ``max_size``;
a line longer than LINE_LIMIT is dropped as it arrives and the message refused with 500
once its end comes; a message over ``max_size`` is drained and refused with 552. The stream
reader itself holds at most twice LINE_LIMIT, commands are 512 octets (aiosmtpd), and a
transaction takes at most MAX_RECIPIENTS recipients.
"""

from __future__ import annotations

import asyncio
import hmac
import re
import socket
import ssl
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Envelope, LoginPassword, Session, syntax

from mailout.catcher import parse
from mailout.catcher.store import MessageStore, Summary
from mailout.catcher.views import MessageViews

__all__ = ["DEFAULT_MAX_SIZE", "CatcherHandler", "CatcherSMTP", "load_users"]

DEFAULT_MAX_SIZE = 50 * 1024 * 1024
READ_SIZE = 64 * 1024
# A line of mail longer than RFC 5321's 1000 octets is kept rather than refused: the catcher shows
# what an application sent. Beyond this, it is refused (and the memory it could take is bounded).
LINE_LIMIT = 1024 * 1024
# RFC 5321 §4.5.3.1.8 asks a server to take at least 100 recipients; past this, 452 (§4.5.3.1.10).
MAX_RECIPIENTS = 1000

_ENHANCED = re.compile(r"^\d{3}[ -]\d\.\d{1,3}\.\d{1,3}(?: |$)")
_REPLY = re.compile(r"^(\d{3})([ -]?)(.*)$", re.DOTALL)
# RFC 3463 codes for replies that come without one (mostly aiosmtpd's own).
_DEFAULT_CODES: dict[tuple[str | None, int], str] = {
    ("MAIL", 250): "2.1.0",
    ("RCPT", 250): "2.1.5",
    ("AUTH", 235): "2.7.0",
    ("VRFY", 252): "2.5.0",
    (None, 500): "5.5.2",
    (None, 501): "5.5.4",
    (None, 502): "5.5.1",
    (None, 503): "5.5.1",
    (None, 504): "5.5.4",
    (None, 530): "5.7.0",
    (None, 535): "5.7.8",
    (None, 538): "5.7.11",
    (None, 552): "5.3.4",
    (None, 553): "5.1.3",
    (None, 554): "5.7.0",
    (None, 555): "5.5.4",
    (None, 421): "4.3.2",
    (None, 454): "4.7.0",
}
_HELO_SAFE = re.compile(r"[^A-Za-z0-9.\-_:\[\]]")


def load_users(path: str | Path) -> dict[str, str]:
    """Read a users file: one ``user:password`` per line; blank lines and ``#`` comments skipped."""
    users: dict[str, str] = {}
    text = Path(path).read_text(encoding="utf-8")
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, password = line.partition(":")
        if not sep or not user:
            raise ValueError(f"{path}, line {number}: expected user:password")
        users[user] = password
    return users


class CatcherHandler:
    """aiosmtpd handler: store each message, under every envelope recipient."""

    def __init__(
        self, store: MessageStore, *, hostname: str, views: MessageViews | None = None
    ) -> None:
        self.store = store
        self.hostname = hostname
        self.views = views
        self._pending: set[asyncio.Future[Summary]] = set()

    def store_message(self, mail_from: str, recipients: list[str], raw: bytes) -> Summary:
        """Read (bounded: parse.read never raises) and store; in a worker thread."""
        parsed = parse.read(raw)
        summary = self.store.add(mail_from, recipients, raw, parsed=parsed)
        if self.views is not None:
            self.views.keep(summary.id, len(raw), parsed)  # so that it is read only once
        return summary

    async def handle_DATA(self, server: CatcherSMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        raw = self.received_line(server, session) + content
        loop = asyncio.get_running_loop()
        # Parsing and writing a big message must not stall the other connections; shielded, so
        # a client that hangs up right after sending still has its message stored.
        future = loop.run_in_executor(
            None, self.store_message, envelope.mail_from or "", list(envelope.rcpt_tos), raw
        )
        self._pending.add(future)
        future.add_done_callback(self._pending.discard)
        summary = await asyncio.shield(future)
        return f"250 2.0.0 OK: message {summary.id} stored"

    async def drain(self, timeout: float = 10) -> None:
        """Wait until every message being stored is stored (for a clean shutdown)."""
        if self._pending:
            await asyncio.wait(list(self._pending), timeout=timeout)

    def received_line(self, server: CatcherSMTP, session: Session) -> bytes:
        """RFC 5321 §4.4: the trace line this server adds at the top of the message."""
        helo = _HELO_SAFE.sub("?", session.host_name or "unknown")[:255]
        peer = session.peer[0] if isinstance(session.peer, tuple) else "unknown"
        protocol = "ESMTP" if session.extended_smtp else "SMTP"
        if server.uses_tls:
            protocol += "S"
        if session.authenticated:
            protocol += "A"
        date = format_datetime(datetime.now(UTC))
        line = (
            f"Received: from {helo} ([{peer}]) by {self.hostname} (mailout) with {protocol}; {date}"
        )
        return line.encode("ascii", "replace") + b"\r\n"


class CatcherSMTP(SMTP):
    """One SMTP connection of the catcher."""

    line_length_limit = LINE_LIMIT

    def __init__(
        self,
        handler: CatcherHandler,
        *,
        max_size: int | None = DEFAULT_MAX_SIZE,
        users: Mapping[str, str] | None = None,
        auth_any: bool = False,
        implicit_tls: bool = False,
        **kwargs: Any,
    ) -> None:
        self._auth_enabled = auth_any or users is not None
        self._users = dict(users or {})
        self._auth_any = auth_any
        self._implicit_tls = implicit_tls
        self._command: str | None = None
        self._ehlo_lines: list[str] | None = None
        self._bdat_data: bytearray | None = None
        super().__init__(
            handler,
            data_size_limit=max_size or None,
            enable_SMTPUTF8=True,
            decode_data=False,
            # A local catcher takes AUTH in plain text: the apps it tests log in on loopback.
            auth_require_tls=False,
            authenticator=self._check_login if self._auth_enabled else None,
            **kwargs,
        )
        # Set after __init__: aiosmtpd warns about AUTH without TLS, which is the point here.
        self._auth_required = self._auth_enabled
        self._smtp_methods = {
            name: self._tracked(name, method) for name, method in self._smtp_methods.items()
        }

    # -- plumbing ------------------------------------------------------------------------------

    def _tracked(self, name: str, method: Callable[[str | None], Any]) -> Callable[..., Any]:
        async def run(arg: str | None) -> None:
            self._command = name
            try:
                await method(arg)
            finally:
                self._command = None

        return run

    @property
    def uses_tls(self) -> bool:
        return self._implicit_tls or self._tls_protocol is not None

    def _set_rset_state(self) -> None:
        super()._set_rset_state()  # type: ignore[no-untyped-call]
        self._bdat_data = None

    def _set_post_data_state(self) -> None:
        super()._set_post_data_state()  # type: ignore[no-untyped-call]
        self._bdat_data = None

    async def push(self, status: str | bytes) -> None:
        if isinstance(status, bytes):
            await super().push(status)
            return
        if self._ehlo_lines is not None:
            self._ehlo_lines.append(status)
            return
        await super().push(self._with_enhanced_code(status))

    def _with_enhanced_code(self, status: str) -> str:
        # RFC 2034 §3: every 2xx, 4xx and 5xx reply after EHLO, except to EHLO itself.
        if self.session is None or not self.session.extended_smtp:
            return status
        match = _REPLY.match(status)
        if match is None or _ENHANCED.match(status):
            return status
        code = int(match.group(1))
        if code // 100 not in (2, 4, 5):
            return status
        enhanced = _DEFAULT_CODES.get((self._command, code)) or _DEFAULT_CODES.get(
            (None, code), f"{code // 100}.0.0"
        )
        separator = match.group(2) or " "
        return f"{code}{separator}{enhanced} {match.group(3)}".rstrip()

    async def handle_exception(self, error: Exception) -> str:
        return f"451 4.3.0 Error: {type(error).__name__}"

    def _check_login(
        self, server: Any, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        if self._auth_any:
            return AuthResult(success=True, auth_data=data)
        user = data.login.decode("utf-8", "replace")
        expected = self._users.get(user)
        ok = expected is not None and hmac.compare_digest(
            expected.encode("utf-8"), bytes(data.password)
        )
        return AuthResult(success=ok, handled=False, auth_data=data if ok else None)

    # -- commands ------------------------------------------------------------------------------

    @syntax("EHLO hostname")
    async def smtp_EHLO(self, hostname: str) -> None:
        self._ehlo_lines = []
        try:
            await super().smtp_EHLO(hostname)
        finally:
            lines, self._ehlo_lines = self._ehlo_lines, None
        if not lines or not lines[0].startswith("250"):
            for line in lines:
                await self.push(line)
            return
        keywords = [line[4:] for line in lines[1:]]
        keywords = [k for k in keywords if k != "HELP"]
        if not self._auth_enabled:
            keywords = [k for k in keywords if not k.startswith("AUTH")]
        keywords += ["PIPELINING", "CHUNKING", "ENHANCEDSTATUSCODES"]
        if self.data_size_limit is None:
            keywords.insert(0, "SIZE")  # RFC 1870 §4: no fixed limit
        reply = [lines[0][4:], *keywords]
        for index, text in enumerate(reply):
            last = index == len(reply) - 1
            await super().push(f"250{' ' if last else '-'}{text}")

    @syntax("AUTH <mechanism>")
    async def smtp_AUTH(self, arg: str) -> None:
        if not self._auth_enabled:
            await self.push("502 5.5.1 AUTH not enabled (mailout serve --auth turns it on)")
            return
        await super().smtp_AUTH(arg)

    @syntax("MAIL FROM: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_MAIL(self, arg: str | None) -> None:
        # aiosmtpd refuses the null reverse-path "<>"; a catcher must take bounces too.
        stripped = self._strip_command_keyword("FROM:", arg or "")
        if stripped is None or not stripped.startswith("<>"):
            await super().smtp_MAIL(arg)
            return
        if await self.check_helo_needed() or await self.check_auth_needed("MAIL"):
            return
        assert self.envelope is not None
        if self.envelope.mail_from is not None:
            await self.push("503 5.5.1 Error: nested MAIL command")
            return
        params = stripped[2:].upper().split()
        parsed = self._getparams(params)
        assert self.session is not None
        if parsed is None or (params and not self.session.extended_smtp):
            await self.push("501 5.5.4 Syntax: MAIL FROM: <address> [SP <mail-parameters>]")
            return
        size = parsed.get("SIZE")
        limit = self.data_size_limit
        if isinstance(size, str) and size.isdigit() and limit and int(size) > limit:
            await self.push("552 5.3.4 Error: message size exceeds fixed maximum size")
            return
        self.envelope.mail_from = ""
        self.envelope.smtp_utf8 = "SMTPUTF8" in parsed
        self.envelope.mail_options.extend(params)
        await self.push("250 2.1.0 OK")

    @syntax("RCPT TO: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_RCPT(self, arg: str | None) -> None:
        assert self.envelope is not None
        if len(self.envelope.rcpt_tos) >= MAX_RECIPIENTS and self.envelope.mail_from is not None:
            await self.push("452 4.5.3 Error: too many recipients")
            return
        if self.envelope.mail_from == "":
            # aiosmtpd tests the sender for truth; stand in for the null sender while it checks.
            self.envelope.mail_from = "<>"
            try:
                await super().smtp_RCPT(arg)
            finally:
                if self.envelope.mail_from == "<>":
                    self.envelope.mail_from = ""
            return
        await super().smtp_RCPT(arg)

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        if self._bdat_data is not None:
            # RFC 3030 §3: DATA and BDAT may not be mixed in one transaction.
            await self.push("503 5.5.1 Error: DATA after BDAT")
            return
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 5.5.1 Error: need RCPT command")
            return
        if arg:
            await self.push("501 5.5.4 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        content, refusal = await self._read_data()
        if refusal is not None:
            self._set_post_data_state()
            await self.push(refusal)
            return
        self.envelope.content = content
        self.envelope.original_content = content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push("250 OK" if status is MISSING else status)

    async def _read_data(self) -> tuple[bytes, str | None]:
        """The content up to the lone ".", dot-unstuffed (RFC 5321 §4.5.2), or why it is refused.

        Whatever is refused is still read to its end (RFC 5321 §4.2.5: the reply comes after
        the data), but never kept: this holds at most ``max_size`` plus one line.
        """
        reader = self._reader
        limit = self.data_size_limit
        content = bytearray()
        refusal: str | None = None
        while True:
            try:
                line = await reader.readuntil(b"\r\n")
            except asyncio.LimitOverrunError as exc:
                # No CRLF within LINE_LIMIT: drop this much, then the rest of the line.
                await self._drop_long_line(exc.consumed)
                refusal = "500 5.5.2 Line too long (see RFC 5321 section 4.5.3.1.6)"
                content = bytearray()
                continue
            self._reset_timeout()
            if line == b".\r\n":
                return bytes(content), refusal
            if refusal is not None:
                continue
            content += line[1:] if line.startswith(b".") else line
            if limit and len(content) > limit:
                refusal = "552 5.3.4 Error: message size exceeds fixed maximum size"
                content = bytearray()

    async def _drop_long_line(self, consumed: int) -> None:
        """Read and forget a line that outgrew the reader's limit, up to its CRLF."""
        reader = self._reader
        dropped = await reader.readexactly(consumed)
        while not dropped.endswith(b"\r\n"):
            self._reset_timeout()
            if dropped.endswith(b"\r"):
                dropped = b"\r" + await reader.readexactly(1)  # a CRLF split across reads
                continue
            try:
                await reader.readuntil(b"\r\n")
                return
            except asyncio.LimitOverrunError as exc:
                dropped = await reader.readexactly(exc.consumed)

    @syntax("BDAT size [LAST]")
    async def smtp_BDAT(self, arg: str | None) -> None:
        words = (arg or "").split()
        valid = (
            1 <= len(words) <= 2
            and words[0].isdigit()
            and len(words[0]) <= 12
            and (len(words) == 1 or words[1].upper() == "LAST")
        )
        if not valid:
            # The chunk's length is unknown, so its bytes cannot be told from commands:
            # the only safe move is to end the session.
            await self.push("501 5.5.4 Syntax: BDAT size [LAST]; closing the connection")
            assert self.transport is not None
            self.transport.close()
            return
        size, last = int(words[0]), len(words) == 2
        refusal = await self._bdat_refusal()
        limit = self.data_size_limit
        received = len(self._bdat_data or b"") + size
        keep = refusal is None and not (limit and received > limit)
        chunk = await self._read_chunk(size, keep)
        if refusal is not None:
            self._set_post_data_state()
            await self.push(refusal)
            return
        if not keep:
            # RFC 1870 §6 / RFC 3030 §2: refuse, and end the transaction.
            self._set_post_data_state()
            await self.push("552 5.3.4 Error: message size exceeds fixed maximum size")
            return
        if self._bdat_data is None:
            self._bdat_data = bytearray()
        self._bdat_data += chunk
        if not last:
            await self.push(f"250 2.0.0 {size} octets received")
            return
        assert self.envelope is not None
        content = bytes(self._bdat_data)
        self._bdat_data = None
        self.envelope.content = content
        self.envelope.original_content = content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push("250 2.0.0 OK" if status is MISSING else status)

    async def _bdat_refusal(self) -> str | None:
        assert self.session is not None
        assert self.envelope is not None
        if not self.session.host_name:
            return "503 5.5.1 Error: send EHLO first"
        if self._auth_required and not self.session.authenticated:
            return "530 5.7.0 Authentication required"
        if not self.envelope.rcpt_tos:
            return "503 5.5.1 Error: need RCPT command"
        return None

    async def _read_chunk(self, size: int, keep: bool) -> bytes:
        parts: list[bytes] = []
        remaining = size
        while remaining:
            # readexactly in bounded steps: a refused 50 MB chunk is drained, never held.
            piece = await self._reader.readexactly(min(remaining, READ_SIZE))
            remaining -= len(piece)
            if keep:
                parts.append(piece)
            self._reset_timeout()
        return b"".join(parts)


def smtp_factory(
    store: MessageStore,
    *,
    hostname: str | None = None,
    max_size: int | None = DEFAULT_MAX_SIZE,
    tls_context: ssl.SSLContext | None = None,
    implicit_tls: bool = False,
    users: Mapping[str, str] | None = None,
    auth_any: bool = False,
    connections: set[CatcherSMTP] | None = None,
    views: MessageViews | None = None,
) -> tuple[CatcherHandler, Callable[[], CatcherSMTP]]:
    """A handler, and a protocol factory for ``loop.create_server``."""
    hostname = hostname or socket.gethostname()  # not getfqdn(): it may block on DNS
    handler = CatcherHandler(store, hostname=hostname, views=views)

    def factory() -> CatcherSMTP:
        return _TrackedSMTP(
            handler,
            hostname=hostname,
            max_size=max_size,
            users=users,
            auth_any=auth_any,
            implicit_tls=implicit_tls,
            tls_context=None if implicit_tls else tls_context,
            connections=connections,
        )

    return handler, factory


class _TrackedSMTP(CatcherSMTP):
    """Keeps itself in a set while connected, so a shutdown can close every connection."""

    def __init__(self, *args: Any, connections: set[CatcherSMTP] | None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._connections = connections

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._connections is not None:
            self._connections.add(self)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if self._connections is not None:
            self._connections.discard(self)
        super().connection_lost(error)
