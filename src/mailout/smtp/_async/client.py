"""SMTP transactions (hand-written): send() and pipelined send_many()."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from mailout.exceptions import (
    DataRefusedError,
    RecipientsRefusedError,
    ReplyError,
    SenderRefusedError,
    SMTPError,
    SMTPUTF8NotSupportedError,
)
from mailout.smtp._async.session import AsyncSession
from mailout.smtp._models import Envelope, SendResult
from mailout.smtp._protocol import (
    Data,
    DataContent,
    MailFrom,
    RcptTo,
    Reply,
    Rset,
    encode_bdat,
)
from mailout.smtp._protocol.commands import check_argument

__all__ = ["AsyncSMTPClient"]

# RFC 2920 §3.1: a client that writes without reading can deadlock with a server whose replies
# fill the socket buffers, so send_many() writes at most this many transactions per burst.
# 500 transactions answer with about 60 KB of replies, well inside a socket's buffers.
_BURST_MESSAGES = 500
_BURST_BYTES = 8 * 1024 * 1024
_RSET = Rset()  # commands are immutable values: one RSET serves every transaction


@dataclass(frozen=True, slots=True)
class _Plan:
    """One transaction, checked and encoded before anything is written."""

    mail: MailFrom
    rcpts: tuple[RcptTo, ...]
    content: bytes  # line endings normalised, CRLF at the end: what BDAT sends as is


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


class AsyncSMTPClient(AsyncSession):
    """An SMTP client connection with PIPELINING (RFC 2920) and CHUNKING (RFC 3030).

    ``use_tls`` means STARTTLS is *required* (no silent downgrade); ``use_ssl`` means implicit
    TLS. Certificates are verified unless an ``ssl_context`` that does not verify is given.
    Connection handling is in AsyncSession (``session.py``); this class sends messages.
    """

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
        # Check now (what encode() checks) so that bad input fails before anything is written.
        check_argument("sender", envelope.sender)
        for recipient in envelope.recipients:
            check_argument("recipient", recipient)
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
        if self._uses_pipelining():
            await self._send_chained(plans, results)
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

    async def _send_chained(
        self, plans: Sequence[_Plan | SMTPError], results: list[SendResult | SMTPError]
    ) -> None:
        """PIPELINING without CHUNKING: one round trip per message instead of two.

        RFC 2920 §3.1 lets message content start a group and DATA end one, so each write
        carries the previous message's content and the next envelope: content, RSET, MAIL,
        RCPTs, DATA. The content waits for its 354 as always.
        """
        core, _ = self._require()
        carried: tuple[_Plan, Reply, list[Reply]] | None = None  # got 354, content not sent
        started = False
        try:
            for item in [*plans, None]:  # None: flush the last message's content
                if isinstance(item, SMTPError):
                    if carried is not None:  # keep results in order: finish the previous one
                        await self._finish_chained(carried, b"", results)
                        carried = None
                    results.append(item)
                    continue
                if item is None and carried is None:
                    break
                self._start_message_clock()
                out = b""
                if carried is not None:
                    out += core.send(DataContent(carried[0].content))
                if item is not None:
                    if started:  # the previous transaction may have failed: start clean
                        out += core.send(Rset())
                    out += b"".join(core.send(c) for c in (item.mail, *item.rcpts, Data()))
                await self._finish_chained(carried, out, results)
                carried = None
                if item is None:
                    break
                if started:
                    await self._read_reply()  # RSET's reply says nothing about the message
                started = True
                mail, rcpts, data = await self._read_transaction(item)
                envelope_ok = mail.is_positive and any(r.is_positive for r in rcpts)
                if data.code == 354 and envelope_ok:
                    carried = (item, mail, rcpts)
                    continue
                if data.code == 354:  # RFC 2920 §3.1: leave the data state with a lone "."
                    await self._write(core.send(DataContent(b"")))
                    await self._read_reply()
                try:
                    if envelope_ok:
                        raise DataRefusedError(data)
                    results.append(_outcome(item, mail, rcpts, data))  # raises the refusal
                except ReplyError as exc:
                    results.append(exc)
        except SMTPError as exc:
            results.extend(exc for _ in range(len(plans) - len(results)))
        finally:
            self._deadline = None

    async def _finish_chained(
        self,
        carried: tuple[_Plan, Reply, list[Reply]] | None,
        out: bytes,
        results: list[SendResult | SMTPError],
    ) -> None:
        """Write ``out`` (it starts with the content of ``carried``, if any); judge that message."""
        core, _ = self._require()
        if carried is not None and not out:
            out = core.send(DataContent(carried[0].content))
        if out:
            await self._write(out)
        if carried is not None:
            plan, mail, rcpts = carried
            final = await self._read_reply()
            try:
                results.append(_outcome(plan, mail, rcpts, final))
            except ReplyError as exc:
                results.append(exc)

    async def _send_plan(self, plan: _Plan) -> SendResult:
        if self._uses_pipelining():
            return await self._send_pipelined(plan)
        return await self._send_lockstep(plan)

    async def _send_bursts(
        self, plans: Sequence[_Plan | SMTPError], results: list[SendResult | SMTPError]
    ) -> None:
        core, _ = self._require()
        queue = deque(plans)
        started = False
        failed_last = False
        while queue:
            burst: list[_Plan | SMTPError] = []
            size = 0
            while queue and len(burst) < _BURST_MESSAGES and size < _BURST_BYTES:
                item = queue.popleft()
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
                            out += core.send(_RSET)
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
