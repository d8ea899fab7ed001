"""The asyncio SMTP client, hand-written.

The driver only moves bytes: the sans-I/O core (``mailout.smtp._protocol``) encodes commands,
pairs replies with them and keeps the state table.
"""

from __future__ import annotations

import contextlib
import ipaddress
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType

from mailout.exceptions import (
    DataRefusedError,
    ImproperlyConfigured,
    RecipientsRefusedError,
    ReplyError,
    SenderRefusedError,
    ServerDisconnected,
    SMTPConnectError,
    SMTPError,
    SMTPSecurityError,
    SMTPTimeoutError,
    SMTPUTF8NotSupportedError,
    StartTLSNotOfferedError,
)
from mailout.smtp._models import Envelope, SendResult
from mailout.smtp._protocol import (
    Command,
    Connection,
    Data,
    DataContent,
    Ehlo,
    Extensions,
    Helo,
    MailFrom,
    Need,
    Quit,
    RcptTo,
    Reply,
    Rset,
    StartTLS,
    State,
    auth_login,
    auth_plain,
    encode_bdat,
)
from mailout.smtp._protocol.auth import SUPPORTED_MECHANISMS, AuthFlow
from mailout.smtp._streams.asyncio_stream import AsyncStream, open_async_stream

__all__ = ["AsyncSMTPClient"]

# RFC 2920 §3.1: a client that writes without reading can deadlock with a server whose replies
# fill the socket buffers, so send_many() writes at most this many transactions per burst.
_BURST_MESSAGES = 50
_BURST_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class _Plan:
    """One transaction, checked and encoded before anything is written."""

    mail: MailFrom
    rcpts: tuple[RcptTo, ...]
    content: bytes  # line endings normalised, CRLF at the end: what BDAT sends as is


def _is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _split(plan: _Plan, rcpts: Sequence[Reply]) -> tuple[dict[str, Reply], dict[str, Reply]]:
    accepted: dict[str, Reply] = {}
    refused: dict[str, Reply] = {}
    for command, reply in zip(plan.rcpts, rcpts, strict=True):
        (accepted if reply.is_positive else refused)[command.recipient] = reply
    return accepted, refused


def _outcome(plan: _Plan, mail: Reply, rcpts: Sequence[Reply], final: Reply) -> SendResult:
    """Judge a transaction from its replies; raise the ReplyError that describes a failure."""
    if not mail.is_positive:
        raise SenderRefusedError(mail)
    accepted, refused = _split(plan, rcpts)
    if not accepted:
        raise RecipientsRefusedError(rcpts[-1], refused=refused)
    if not final.is_positive:
        raise DataRefusedError(final)
    return SendResult(accepted=accepted, refused=refused, reply=final)


class AsyncSMTPClient:
    """An SMTP client connection with PIPELINING (RFC 2920) and CHUNKING (RFC 3030).

    ``use_tls`` means STARTTLS is *required* (no silent downgrade); ``use_ssl`` means implicit
    TLS. Certificates are verified unless an ``ssl_context`` that does not verify is given.
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
        self._deadline: float | None = None
        self.local_hostname = local_hostname
        self.username = username
        self._password = password  # never shown: see __repr__
        self.allow_insecure_auth = allow_insecure_auth
        self.pipelining = pipelining
        self.chunking = chunking
        self._stream: AsyncStream | None = None
        self._core: Connection | None = None
        self._encrypted = False

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

    async def __aenter__(self) -> AsyncSMTPClient:
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
                f"use_tls requires STARTTLS but {self.host} does not offer it"
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
        if not (self._encrypted or self.allow_insecure_auth or _is_loopback(self.host)):
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
            raise SMTPConnectError("not connected: call connect() first")
        return self._core, self._stream

    def _time_left(self) -> float | None:
        """Seconds left for one operation: ``timeout``, cut short by the message deadline."""
        if self._deadline is None:
            return self.timeout
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise self._late()
        return left if self.timeout is None else min(left, self.timeout)

    def _past_deadline(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline

    def _late(self) -> SMTPTimeoutError:
        return SMTPTimeoutError(f"message not done within message_timeout={self.message_timeout}s")

    def _start_message_clock(self) -> None:
        if self.message_timeout is not None:
            self._deadline = time.monotonic() + self.message_timeout

    async def _write(self, data: bytes) -> None:
        _, stream = self._require()
        try:
            await stream.write(data, self._time_left())
        except BaseException as exc:
            # Half a write (or a cancelled one) leaves the server out of step: drop the link.
            await self._abort()
            if isinstance(exc, SMTPTimeoutError) and self._past_deadline():
                raise self._late() from None
            raise

    async def _read_reply(self) -> Reply:
        """Read until the core has a whole reply; ``timeout`` bounds each reply, not each read."""
        core, stream = self._require()
        try:
            budget = self._time_left()
            deadline = None if budget is None else time.monotonic() + budget
            while True:
                reply = core.next_reply()
                if not isinstance(reply, Need):
                    break
                remaining = None if deadline is None else max(deadline - time.monotonic(), 0.0)
                core.receive_data(await stream.read(remaining))
        except BaseException as exc:
            # A timeout, a garbled reply or a cancellation mid-transaction leaves the session in
            # an unknown state: the connection is unusable.
            await self._abort()
            if isinstance(exc, SMTPTimeoutError) and self._past_deadline():
                raise self._late() from None
            raise
        if reply.code == 421:  # RFC 5321 §3.8: the server is closing the connection
            await self._abort()
            raise ServerDisconnected(f"server closed the connection: {reply}")
        return reply

    async def _roundtrip(self, command: Command) -> Reply:
        core, _ = self._require()
        await self._write(core.send(command))
        return await self._read_reply()

    async def _reset(self) -> None:
        """RSET after a failed transaction; its own failure must not hide the first error."""
        with contextlib.suppress(SMTPError):
            await self._roundtrip(Rset())

    # -- transactions -----------------------------------------------------------------------

    def _plan(self, envelope: Envelope, content: bytes) -> _Plan:
        core, _ = self._require()
        extensions = core.extensions
        addresses = (envelope.sender, *envelope.recipients)
        # RFC 6531 §3.2: a non-ASCII address can only travel with SMTPUTF8.
        smtputf8 = envelope.smtputf8 or not all(a.isascii() for a in addresses)
        if smtputf8 and not extensions.smtputf8:
            raise SMTPUTF8NotSupportedError(
                f"the envelope needs SMTPUTF8 and {self.host} does not offer it"
            )
        payload = encode_bdat(content)
        params: list[str] = []
        if "SIZE" in extensions:  # RFC 1870 §5: lets the server refuse a big message up front
            params.append(f"SIZE={len(payload)}")
        if envelope.eight_bit and extensions.eight_bit_mime:
            params.append("BODY=8BITMIME")  # RFC 6152 §2
        if smtputf8:
            params.append("SMTPUTF8")
        plan = _Plan(
            MailFrom(envelope.sender, tuple(params)),
            tuple(RcptTo(r) for r in envelope.recipients),
            payload,
        )
        # Encode once now so that bad input (CR/LF/NUL) fails before anything is written.
        for command in (plan.mail, *plan.rcpts):
            command.encode()
        return plan

    def _uses_pipelining(self) -> bool:
        core, _ = self._require()
        return self.pipelining and core.extensions.pipelining

    def _uses_chunking(self) -> bool:
        core, _ = self._require()
        return self.chunking and core.extensions.chunking

    async def send(self, envelope: Envelope, content: bytes) -> SendResult:
        """Send one message; raise a ReplyError subclass if the server refuses it.

        Refused recipients are reported in ``SendResult.refused`` as long as one was accepted.
        """
        plan = self._plan(envelope, content)
        self._start_message_clock()
        try:
            if self._uses_pipelining():
                return await self._send_pipelined(plan)
            return await self._send_lockstep(plan)
        finally:
            self._deadline = None

    async def _send_lockstep(self, plan: _Plan) -> SendResult:
        core, _ = self._require()
        mail = await self._roundtrip(plan.mail)
        if not mail.is_positive:
            await self._reset()
            raise SenderRefusedError(mail)
        rcpts = [await self._roundtrip(rcpt) for rcpt in plan.rcpts]
        accepted, refused = _split(plan, rcpts)
        if not accepted:
            await self._reset()
            raise RecipientsRefusedError(rcpts[-1], refused=refused)
        chunking = self._uses_chunking()
        if chunking:
            await self._write(core.send_bdat(plan.content, last=True))
        else:
            data = await self._roundtrip(Data())
            if data.code != 354:  # RFC 5321 §4.1.1.4: only 354 invites the content
                await self._reset()
                raise DataRefusedError(data)
            await self._write(core.send(DataContent(plan.content)))
        final = await self._read_reply()
        if not final.is_positive and chunking:
            await self._reset()  # RFC 3030 §4.1: after a failed BDAT the client resets
        return _outcome(plan, mail, rcpts, final)

    async def _send_pipelined(self, plan: _Plan) -> SendResult:
        core, _ = self._require()
        if self._uses_chunking():
            # RFC 3030 §4.2 with RFC 2920: MAIL, RCPTs, BDAT LAST and the content in one write.
            await self._write(self._encode_bdat_transaction(plan))
            mail, rcpts, final = await self._read_transaction(plan)
            if not final.is_positive:
                await self._reset()
            return _outcome(plan, mail, rcpts, final)
        # RFC 2920 §3.1: MAIL, RCPTs and DATA in one write; the content waits for 354.
        await self._write(b"".join(core.send(c) for c in (plan.mail, *plan.rcpts, Data())))
        mail, rcpts, data = await self._read_transaction(plan)
        envelope_ok = mail.is_positive and any(r.is_positive for r in rcpts)
        if data.code == 354 and envelope_ok:
            await self._write(core.send(DataContent(plan.content)))
            return _outcome(plan, mail, rcpts, await self._read_reply())
        if data.code == 354:
            # RFC 2920 §3.1: DATA was accepted although the envelope failed; the client must
            # not assume DATA fails, so it sends a lone "." (an empty message with no valid
            # recipient) to leave the data state, then RSET.
            await self._write(core.send(DataContent(b"")))
            await self._read_reply()
        await self._reset()
        if envelope_ok:
            raise DataRefusedError(data)
        return _outcome(plan, mail, rcpts, data)  # raises SenderRefused or RecipientsRefused

    def _encode_bdat_transaction(self, plan: _Plan) -> bytes:
        core, _ = self._require()
        parts = [core.send(c) for c in (plan.mail, *plan.rcpts)]
        parts.append(core.send_bdat(plan.content, last=True))
        return b"".join(parts)

    async def _read_transaction(self, plan: _Plan) -> tuple[Reply, list[Reply], Reply]:
        mail = await self._read_reply()
        rcpts = [await self._read_reply() for _ in plan.rcpts]
        return mail, rcpts, await self._read_reply()

    async def send_many(
        self, items: Sequence[tuple[Envelope, bytes]]
    ) -> list[SendResult | SMTPError]:
        """Send several messages; each gets a SendResult or the SMTPError that stopped it.

        With PIPELINING and CHUNKING, whole transactions go out in bursts (one write of MAIL,
        RCPTs, ``BDAT LAST`` and content for many messages, then the replies are read in order).
        Each transaction after the first starts with RSET, so that one message's failure (whose
        server state we cannot know before writing the next) never spills into the next.
        If the connection is lost, every message without a final reply gets that error.
        Bad input (CR/LF/NUL in an address) raises before anything is sent.
        """
        plans: list[_Plan | SMTPError] = []
        for envelope, content in items:
            try:
                plans.append(self._plan(envelope, content))
            except SMTPUTF8NotSupportedError as exc:
                plans.append(exc)
        results: list[SendResult | SMTPError] = []
        if self._uses_pipelining() and self._uses_chunking():
            await self._send_bursts(plans, results)
            return results
        for plan in plans:
            if isinstance(plan, SMTPError):
                results.append(plan)
                continue
            self._start_message_clock()
            try:
                results.append(await self._send_plan(plan))
            except ReplyError as exc:
                results.append(exc)
            except SMTPError as exc:
                results.extend(exc for _ in range(len(plans) - len(results)))
                break
            finally:
                self._deadline = None
        return results

    async def _send_plan(self, plan: _Plan) -> SendResult:
        if self._uses_pipelining():
            return await self._send_pipelined(plan)
        return await self._send_lockstep(plan)

    async def _send_bursts(
        self, plans: Sequence[_Plan | SMTPError], results: list[SendResult | SMTPError]
    ) -> None:
        core, _ = self._require()
        queue = list(plans)
        started = False
        failed_last = False
        while queue:
            burst: list[_Plan | SMTPError] = []
            size = 0
            while queue and len(burst) < _BURST_MESSAGES and size < _BURST_BYTES:
                item = queue.pop(0)
                burst.append(item)
                size += len(item.content) if isinstance(item, _Plan) else 0
            try:
                out = bytearray()
                resets: list[bool] = []
                for item in burst:
                    # RSET before every transaction but the first: the previous one may have
                    # failed in a way that leaves the server inside a transaction.
                    resets.append(started and isinstance(item, _Plan))
                    if isinstance(item, _Plan):
                        if started:
                            out += core.send(Rset())
                        out += self._encode_bdat_transaction(item)
                        started = True
                self._start_message_clock()  # a burst is bounded like one message
                await self._write(bytes(out))
                for item, reset in zip(burst, resets, strict=True):
                    if isinstance(item, SMTPError):
                        results.append(item)
                        continue
                    if reset:
                        await self._read_reply()  # RSET's reply says nothing about the message
                    mail, rcpts, final = await self._read_transaction(item)
                    try:
                        results.append(_outcome(item, mail, rcpts, final))
                        failed_last = False
                    except ReplyError as exc:
                        results.append(exc)
                        failed_last = True
            except SMTPError as exc:
                results.extend(exc for _ in range(len(plans) - len(results)))
                return
            finally:
                self._deadline = None
        if failed_last:
            await self._reset()


def _address_literal(address: str) -> str:
    # RFC 5321 §4.1.3: IPv6 address literals carry an "IPv6:" tag.
    return f"[IPv6:{address}]" if ":" in address else f"[{address}]"
