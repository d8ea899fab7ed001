"""The catcher's SMTP side: aiosmtpd, extended with CHUNKING (BDAT) and enhanced status codes.

aiosmtpd reads commands line by line, so PIPELINING works as it is; what it lacks we add here:

- ``BDAT`` (RFC 3030): each chunk is read exactly, never dot-unstuffed; ``LAST`` ends the message.
  The chunk is always consumed, even when refused, so its bytes can never be taken for commands.
- ``ENHANCEDSTATUSCODES`` (RFC 2034): after EHLO every 2xx/4xx/5xx reply carries a status code;
  aiosmtpd's own replies that lack one get it added in ``push()``.
- ``MAIL FROM:<>`` (the null sender of bounces, RFC 5321 §4.5.5), which aiosmtpd refuses.
- AUTH only when asked for (accept any credentials, or check a users file), plain text allowed:
  this is a local test server, and the apps it tests must be able to log in to it.

The message is stored exactly as received, with one ``Received:`` line added at the top
(``catcher.handler``).

What a client can make it hold is bounded: DATA is read by ``catcher.reading`` rather than by
aiosmtpd (which keeps every fragment of a line that never ends), into one buffer of at most
``max_size``;
a line longer than LINE_LIMIT is dropped as it arrives and the message refused with 500
once its end comes; a message over ``max_size`` is drained and refused with 552. The stream
reader itself holds at most twice LINE_LIMIT, commands are 512 octets (aiosmtpd), and a
transaction takes at most MAX_RECIPIENTS recipients.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable, Mapping
from typing import Any

from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Envelope, LoginPassword, Session, syntax

from mailout.catcher.enhanced_codes import with_enhanced_code
from mailout.catcher.handler import CatcherHandler
from mailout.catcher.reading import LINE_LIMIT, TOO_BIG, read_chunk, read_data
from mailout.catcher.store import MessageStore
from mailout.catcher.users import load_users, password_matches
from mailout.catcher.views import MessageViews

# CatcherHandler, LINE_LIMIT and load_users live in modules of their own; imported from here too.
__all__ = [
    "DEFAULT_MAX_SIZE",
    "LINE_LIMIT",
    "MAX_RECIPIENTS",
    "CatcherHandler",
    "CatcherSMTP",
    "load_users",
    "smtp_factory",
]

DEFAULT_MAX_SIZE = 50 * 1024 * 1024
# RFC 5321 §4.5.3.1.8 asks a server to take at least 100 recipients; past this, 452 (§4.5.3.1.10).
MAX_RECIPIENTS = 1000


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
        return with_enhanced_code(status, self._command)

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
        ok = password_matches(self._users, user, bytes(data.password))
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
            await self.push(TOO_BIG)
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
        content, refusal = await read_data(self._reader, self.data_size_limit, self._reset_timeout)
        if refusal is not None:
            self._set_post_data_state()
            await self.push(refusal)
            return
        await self._hand_over(content, "250 OK")

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
        chunk = await read_chunk(self._reader, size, keep, self._reset_timeout)
        if not keep:
            # Refused, or over the limit (RFC 1870 §6 / RFC 3030 §2): end the transaction.
            self._set_post_data_state()
            await self.push(refusal or TOO_BIG)
            return
        if self._bdat_data is None:
            self._bdat_data = bytearray()
        self._bdat_data += chunk
        if not last:
            await self.push(f"250 2.0.0 {size} octets received")
            return
        content = bytes(self._bdat_data)
        self._bdat_data = None
        await self._hand_over(content, "250 2.0.0 OK")

    async def _hand_over(self, content: bytes, ok: str) -> None:
        """The whole message, by DATA or BDAT: to the handler, then the reply (``ok`` unless the
        handler gave its own) and a fresh transaction."""
        assert self.envelope is not None
        self.envelope.content = content
        self.envelope.original_content = content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push(ok if status is MISSING else status)

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
