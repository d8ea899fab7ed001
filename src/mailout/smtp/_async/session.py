"""The SMTP session (hand-written): connection, TLS, AUTH, timeouts and byte I/O.

The driver only moves bytes: the sans-I/O core (``mailout.smtp._protocol``) encodes commands,
pairs replies with them and keeps the state table.
"""

from __future__ import annotations

import contextlib
import ssl
import time
from types import TracebackType
from typing import Self

from mailout.exceptions import (
    DeliveryUnknownError,
    ImproperlyConfigured,
    ReplyError,
    ServerDisconnected,
    SMTPConnectError,
    SMTPError,
    SMTPSecurityError,
    SMTPTimeoutError,
    StartTLSNotOfferedError,
)
from mailout.smtp._protocol import (
    Command,
    Connection,
    Ehlo,
    Extensions,
    Helo,
    Need,
    Quit,
    Reply,
    Rset,
    StartTLS,
    State,
    auth_login,
    auth_plain,
)
from mailout.smtp._protocol.auth import SUPPORTED_MECHANISMS, AuthFlow
from mailout.smtp._streams.asyncio_stream import AsyncStream, open_async_stream
from mailout.utils import is_loopback

__all__ = ["DATA_DONE_TIMEOUT", "AsyncSession"]

# RFC 5321 §4.5.3.2.6: wait 10 minutes for the reply to the end of data, since giving up
# earlier, while the server is still taking the message in, is how duplicates are made.
DATA_DONE_TIMEOUT = 600.0


class AsyncSession:
    """One SMTP session: connect, EHLO, STARTTLS, AUTH, QUIT, and moving bytes with timeouts.

    The transactions that use it live in ``client.py`` (AsyncSMTPClient).

    ``use_tls`` means STARTTLS is *required* (no silent downgrade); ``use_ssl`` means implicit
    TLS. Certificates are verified unless an ``ssl_context`` that does not verify is given.

    ``timeout`` bounds the connect and each reply; ``data_done_timeout`` bounds the wait for
    the reply to a message's end of data (and for the replies before it in the same
    pipelined write, which a server may hold back until then); ``message_timeout`` bounds a
    whole transaction, or a whole burst of them.
    """

    def __init__(
        self,
        host: str = "localhost",
        port: int = 25,
        *,
        use_tls: bool = False,
        use_ssl: bool = False,
        ssl_context: ssl.SSLContext | None = None,
        ssl_cafile: str | None = None,
        ssl_certfile: str | None = None,
        ssl_keyfile: str | None = None,
        timeout: float | None = 30.0,
        message_timeout: float | None = 600.0,
        data_done_timeout: float | None = DATA_DONE_TIMEOUT,
        local_hostname: str | None = None,
        username: str | None = None,
        password: str | None = None,
        allow_insecure_auth: bool = False,
        pipelining: bool = True,
        chunking: bool = True,
    ) -> None:
        if use_tls and use_ssl:
            raise ImproperlyConfigured(
                "use_tls (STARTTLS) and use_ssl (implicit TLS) exclude each other"
            )
        if (username is None) != (password is None):
            raise ImproperlyConfigured("username and password must be given together")
        self.host = host
        self.port = port
        self.use_tls = use_tls
        self.use_ssl = use_ssl
        self.ssl_context = ssl_context
        self.ssl_cafile = ssl_cafile
        self.ssl_certfile = ssl_certfile
        self.ssl_keyfile = ssl_keyfile
        self.timeout = timeout
        # RFC 5321 §4.5.3.2 allows 10 minutes for the end of DATA; this bounds one whole
        # transaction (or one burst of them), so a server trickling replies cannot stall forever.
        self.message_timeout = message_timeout
        self.data_done_timeout = data_done_timeout
        self._deadline: float | None = None
        self._sent = 0  # bytes of the last _write() that left (all of them unless it failed)
        self._answered: list[Reply] = []  # replies already in when the last _write() failed
        self.local_hostname = local_hostname
        self.username = username
        self._password = password  # never shown: see __repr__
        self.allow_insecure_auth = allow_insecure_auth
        self.pipelining = pipelining
        self.chunking = chunking
        self._stream: AsyncStream | None = None
        self._core: Connection | None = None
        self._encrypted = False
        self._closed_by: ServerDisconnected | None = None  # a 421 that ended the session

    def __repr__(self) -> str:
        user = f" username={self.username!r}" if self.username is not None else ""
        return (
            f"<{type(self).__name__} {self.host}:{self.port}{user} connected={self.is_connected}>"
        )

    @property
    def is_connected(self) -> bool:
        return (
            self._stream is not None
            and self._core is not None
            and (self._core.state is not State.CLOSED)
        )

    @property
    def extensions(self) -> Extensions:
        """What the server advertised in its last EHLO reply (empty before connect)."""
        return self._core.extensions if self._core is not None else Extensions()

    async def __aenter__(self) -> Self:
        if not self.is_connected:
            await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- connection -------------------------------------------------------------------------

    def _make_ssl_context(self) -> ssl.SSLContext:
        if self.ssl_context is not None:
            return self.ssl_context
        context = ssl.create_default_context(cafile=self.ssl_cafile)
        if self.ssl_certfile is not None:
            context.load_cert_chain(self.ssl_certfile, self.ssl_keyfile)
        return context

    async def connect(self) -> None:
        """Connect, read the greeting, EHLO, STARTTLS if ``use_tls``, AUTH if ``username``."""
        if self.is_connected:
            raise SMTPConnectError(f"already connected to {self.host}:{self.port}")
        context = self._make_ssl_context() if self.use_ssl or self.use_tls else None
        self._stream = await open_async_stream(
            self.host,
            self.port,
            timeout=self.timeout,
            ssl_context=context if self.use_ssl else None,
            server_hostname=self.host,
        )
        self._core = Connection()
        self._encrypted = self.use_ssl
        self._closed_by = None
        try:
            greeting = await self._read_reply()
            if greeting.code != 220:  # RFC 5321 §3.1: 554 means "no service here"
                raise SMTPConnectError(f"server refused the connection: {greeting}")
            await self._hello()
            if self.use_tls and context is not None:
                await self._starttls(context)
            if self.username is not None:
                await self._login()
        except BaseException:
            await self._abort()
            raise

    async def _hello(self) -> None:
        _, stream = self._require()
        # RFC 5321 §4.1.4: an address literal is a valid EHLO argument and needs no DNS lookup.
        hostname = self.local_hostname or _address_literal(stream.local_address)
        reply = await self._roundtrip(Ehlo(hostname))
        if reply.is_permanent:  # RFC 5321 §3.2: fall back to HELO for servers without EHLO
            reply = await self._roundtrip(Helo(hostname))
        if not reply.is_positive:
            raise ReplyError(reply)

    async def _starttls(self, context: ssl.SSLContext) -> None:
        core, stream = self._require()
        if not core.extensions.starttls:
            raise StartTLSNotOfferedError(
                f"STARTTLS extension not supported by server. use_tls requires it and {self.host}"
                " does not offer it; mailout never falls back to plain text"
            )
        reply = await self._roundtrip(StartTLS())
        if reply.code != 220:
            raise SMTPSecurityError(f"STARTTLS refused: {reply}")
        await stream.start_tls(context, self.host, self.timeout)
        core.start_tls()  # RFC 3207 §4.2: forget buffered bytes and extensions
        self._encrypted = True
        await self._hello()  # RFC 3207 §4.2: EHLO again over TLS

    async def _login(self) -> None:
        core, _ = self._require()
        if self.username is None or self._password is None:
            return
        if not (self._encrypted or self.allow_insecure_auth or is_loopback(self.host)):
            raise SMTPSecurityError(
                f"refusing to send credentials unencrypted to {self.host}: "
                "use use_tls or use_ssl, or allow_insecure_auth=True"
            )
        offered = core.extensions.auth_mechanisms
        mechanism = next((m for m in SUPPORTED_MECHANISMS if m in offered), None)
        if mechanism is None:
            raise SMTPSecurityError(
                f"{self.host} offers no AUTH mechanism mailout supports "
                f"(offered: {', '.join(sorted(offered)) or 'none'})"
            )
        flows = {"PLAIN": auth_plain, "LOGIN": auth_login}
        await self._authenticate(flows[mechanism](self.username, self._password))

    async def _authenticate(self, flow: AuthFlow) -> None:
        command = next(flow)
        while True:
            reply = await self._roundtrip(command)
            try:
                command = flow.send(reply)
            except StopIteration:
                return

    async def aclose(self) -> None:
        """Say QUIT and close; errors on the way out are ignored (the connection is done)."""
        core, stream = self._core, self._stream
        if core is None or stream is None:
            return
        try:
            if core.state is not State.CLOSED:
                # Sending QUIT moves the core to CLOSED at once, so its 221 is read here
                # directly rather than through _read_reply(), which requires an open session.
                await stream.write(core.send(Quit()), self.timeout)
                while isinstance(core.next_reply(), Need):
                    core.receive_data(await stream.read(self.timeout))
        except (SMTPError, OSError):
            pass
        finally:
            await self._abort()

    async def _abort(self) -> None:
        stream, self._stream = self._stream, None
        if self._core is not None:
            self._core.close()
        if stream is not None:
            await stream.aclose()

    # -- moving bytes -----------------------------------------------------------------------

    def _require(self) -> tuple[Connection, AsyncStream]:
        if self._core is None or self._stream is None or self._core.state is State.CLOSED:
            if self._closed_by is not None:
                raise ServerDisconnected(str(self._closed_by))
            raise SMTPConnectError("not connected: call connect() first")
        return self._core, self._stream

    def _time_left(self, timeout: float | None = None) -> float | None:
        """Seconds left for one operation: ``timeout`` (by default the ``timeout`` option), cut
        short by the message deadline."""
        if timeout is None:
            timeout = self.timeout
        if self._deadline is None:
            return timeout
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise self._late()
        return left if timeout is None else min(left, timeout)

    def _past_deadline(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline

    def _late(self) -> SMTPTimeoutError:
        return SMTPTimeoutError(f"message not done within message_timeout={self.message_timeout}s")

    def _start_message_clock(self) -> None:
        if self.message_timeout is not None:
            self._deadline = time.monotonic() + self.message_timeout

    async def _write(self, data: bytes) -> None:
        """Write ``data``. If that fails, ``_sent`` says how much of it left (the rest never
        will) and ``_answered`` holds the replies that had already come for what was written."""
        _, stream = self._require()
        self._sent = 0
        self._answered = []
        try:
            await stream.write(data, self._time_left())
        except BaseException as exc:
            # Half a write (or a cancelled one) leaves the server out of step: drop the link.
            self._sent = stream.written
            self._answered = self._received(stream)
            await self._abort()
            if isinstance(exc, SMTPTimeoutError) and self._past_deadline():
                raise self._late() from None
            raise
        self._sent = len(data)

    def _received(self, stream: AsyncStream) -> list[Reply]:
        """The replies that arrived while a write was failing, paired with their commands."""
        core = self._core
        if core is None:
            return []
        for _ in range(16):  # what already arrived, within the parser's own limits
            data = stream.poll()
            if not data:
                break
            core.receive_data(data)
        return core.buffered_replies()

    async def _begin(self) -> Connection:
        """The core, ready for the first command of a new write.

        When no reply is owed, whatever the server has sent already answers nothing we sent
        (an early reply, such as a 250 right after 354): it is fed to the core, which refuses
        it rather than pair it with the command about to go out. The connection is then over.
        """
        core, stream = self._require()
        if core.idle:
            try:
                core.receive_data(stream.poll())
                core.check_idle()
            except BaseException:
                await self._abort()
                raise
        return core

    async def _verify_idle(self) -> None:
        """After the last reply of a write: the server must have sent nothing more.

        A reply left over means one was answered twice or early, so the replies just read may
        belong to other commands: SMTPProtocolError (the connection is over). A ``421`` left
        over only says the server is closing (RFC 5321 §3.8): the replies read stand.
        """
        core, stream = self._require()
        try:
            core.receive_data(stream.poll())
            core.check_idle()
        except ServerDisconnected as exc:
            self._closed_by = exc  # what the next command will be told
            await self._abort()
        except BaseException:
            await self._abort()
            raise

    async def _read_reply(self) -> Reply:
        """Read until the core has a whole reply; ``timeout`` bounds each reply, not each read.

        While an end of data awaits its reply, ``data_done_timeout`` bounds it instead, and a
        reply that cannot be had (a timeout, a dropped connection, a garbled or out-of-step
        reply) raises DeliveryUnknownError: the server has the whole message and may have
        taken it, so it must not be sent again.
        """
        core, stream = self._require()
        committing = core.committing
        try:
            reply = core.next_reply()
            if isinstance(reply, Need):
                # Only a reply not yet (wholly) buffered needs a read, and so a time budget;
                # after a pipelined burst most replies are already here (and one that is here
                # is taken even past the deadline: nothing is waited for).
                if self._deadline is not None and time.monotonic() >= self._deadline:
                    raise self._late()
                budget = self._time_left(self.data_done_timeout if committing else None)
                deadline = None if budget is None else time.monotonic() + budget
                while isinstance(reply, Need):
                    remaining = None if deadline is None else max(deadline - time.monotonic(), 0.0)
                    core.receive_data(await stream.read(remaining))
                    reply = core.next_reply()
        except BaseException as exc:
            # A timeout, a garbled reply or a cancellation mid-transaction leaves the session in
            # an unknown state: the connection is unusable.
            await self._abort()
            error: BaseException = exc
            if isinstance(exc, SMTPTimeoutError) and self._past_deadline():
                error = self._late()
            if committing and isinstance(error, SMTPError):
                raise unknown(error) from error
            if error is exc:
                raise
            raise error from None
        if reply.code == 421:  # RFC 5321 §3.8: the server is closing the connection
            await self._abort()
            raise ServerDisconnected(f"server closed the connection: {reply}")
        return reply

    async def _roundtrip(self, command: Command) -> Reply:
        core = await self._begin()
        await self._write(core.send(command))
        return await self._read_reply()

    async def _reset(self) -> None:
        """RSET after a failed transaction; its own failure must not hide the first error."""
        with contextlib.suppress(SMTPError):
            await self._roundtrip(Rset())


def unknown(cause: SMTPError) -> DeliveryUnknownError:
    """The error of a message whose content was sent whole but whose final reply was lost."""
    error = DeliveryUnknownError(
        f"the message was sent in full but its final reply was lost ({cause}): it may have "
        "been delivered, so it is not sent again"
    )
    error.__cause__ = cause
    return error


def _address_literal(address: str) -> str:
    # RFC 5321 §4.1.3: IPv6 address literals carry an "IPv6:" tag.
    return f"[IPv6:{address}]" if ":" in address else f"[{address}]"
