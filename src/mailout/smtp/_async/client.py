"""SMTP transactions (hand-written): send() and pipelined send_many().

The duplicate rule: once a message's content has left whole (its end of data was written), a
final reply that cannot be had -- a timeout, a dropped connection, a garbled or out-of-step
reply -- makes its outcome unknown: it gets DeliveryUnknownError and is never sent again here
(RFC 5321 §4.5.3.2.6). A message that never got that far gets the error that cut the
connection, and may be sent again (the pool does). A ``421`` is an answer, not a loss: the
server refused what it answered and takes in nothing after it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from mailout.exceptions import (
    DataRefusedError,
    DeliveryUnknownError,
    RecipientsRefusedError,
    ReplyError,
    SenderRefusedError,
    ServerDisconnected,
    SMTPError,
    SMTPProtocolError,
    SMTPUTF8NotSupportedError,
)
from mailout.smtp._async.session import AsyncSession, unknown
from mailout.smtp._models import Envelope, SendResult
from mailout.smtp._protocol import (
    Connection,
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


@dataclass(slots=True)
class _Plan:
    """One transaction, checked and encoded before anything is written (one a message: not
    frozen, whose __init__ costs more; never changed once made)."""

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


def _judge(
    plan: _Plan, mail: Reply, rcpts: Sequence[Reply], final: Reply
) -> SendResult | SMTPError:
    try:
        return _outcome(plan, mail, rcpts, final)
    except ReplyError as exc:
        return exc


def _not_sent(error: SMTPError) -> SMTPError:
    """The error for messages after one whose outcome is unknown: what cut the connection."""
    cause = error.__cause__
    if isinstance(error, DeliveryUnknownError) and isinstance(cause, SMTPError):
        return cause
    return error


def _out_of_step(error: SMTPError) -> bool:
    """The replies of the current write cannot be trusted: one came early, twice, or wrong."""
    return isinstance(error, SMTPProtocolError) or isinstance(error.__cause__, SMTPProtocolError)


def _fill(
    plans: Sequence[_Plan | SMTPError], results: list[SendResult | SMTPError], error: SMTPError
) -> None:
    """Every message not judged yet gets ``error``; one refused locally keeps its own."""
    results.extend(p if isinstance(p, SMTPError) else error for p in plans[len(results) :])


@dataclass(frozen=True, slots=True)
class _Carried:
    """A chained message whose DATA got 354: its content goes out with the next write."""

    plan: _Plan
    mail: Reply
    rcpts: list[Reply]


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
        recipients = envelope.recipients
        # RFC 6531 §3.2: a non-ASCII address can only travel with SMTPUTF8.
        smtputf8 = envelope.smtputf8 or not (
            envelope.sender.isascii() and all(map(str.isascii, recipients))
        )
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
            tuple([RcptTo(r) for r in recipients]),
            payload,
        )
        # Check now (what encode() checks) so that bad input fails before anything is written.
        check_argument("sender", envelope.sender)
        for recipient in recipients:
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
        DeliveryUnknownError means the content left whole and its final reply was lost: the
        message may have been delivered, so do not simply send it again.
        """
        plan = self._plan(envelope, content)
        self._start_message_clock()
        try:
            return await self._send_plan(plan)
        finally:
            self._deadline = None

    async def _send_plan(self, plan: _Plan) -> SendResult:
        if self._uses_pipelining():
            return await self._send_pipelined(plan)
        return await self._send_lockstep(plan)

    async def _read_final(self) -> Reply:
        """The reply to the end of data just written, with nothing from the server after it."""
        final = await self._read_reply()
        await self._verify_final()
        return final

    async def _verify_final(self) -> None:
        """_verify_idle() after a write that ended a message: a reply left over makes the
        message's own reply doubtful, so its outcome is unknown."""
        try:
            await self._verify_idle()
        except SMTPError as exc:
            raise unknown(exc) from exc

    async def _send_lockstep(self, plan: _Plan) -> SendResult:
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
            core = await self._begin()
            await self._write(core.send_bdat(plan.content, last=True))
        else:
            data = await self._roundtrip(Data())
            if data.code != 354:  # RFC 5321 §4.1.1.4: only 354 invites the content
                await self._reset()
                raise DataRefusedError(data)
            core = await self._begin()  # a reply already here came before the content
            await self._write(core.send(DataContent(plan.content)))
        final = await self._read_final()
        if not final.is_positive and chunking:
            await self._reset()  # RFC 3030 §4.1: after a failed BDAT the client resets
        return _outcome(plan, mail, rcpts, final)

    async def _send_pipelined(self, plan: _Plan) -> SendResult:
        if self._uses_chunking():
            # RFC 3030 §4.2 with RFC 2920: MAIL, RCPTs, BDAT LAST and the content in one write.
            core = await self._begin()
            await self._write(b"".join(self._bdat_transaction(core, plan)))
            mail, rcpts, final = await self._read_transaction(plan)
            await self._verify_final()
            if not final.is_positive:
                await self._reset()
            return _outcome(plan, mail, rcpts, final)
        # RFC 2920 §3.1: MAIL, RCPTs and DATA in one write; the content waits for 354.
        core = await self._begin()
        await self._write(b"".join(core.send(c) for c in (plan.mail, *plan.rcpts, Data())))
        mail, rcpts, data = await self._read_transaction(plan)
        envelope_ok = mail.is_positive and any(r.is_positive for r in rcpts)
        if data.code == 354:
            core = await self._begin()  # a reply already here came before the content
            if envelope_ok:
                await self._write(core.send(DataContent(plan.content)))
                return _outcome(plan, mail, rcpts, await self._read_final())
            # RFC 2920 §3.1: DATA was accepted although the envelope failed; the client must
            # not assume DATA fails, so it sends a lone "." (an empty message with no valid
            # recipient) to leave the data state, then RSET.
            await self._write(core.send(DataContent(b"", abort=True)))
            await self._read_reply()
        await self._reset()
        if envelope_ok:
            raise DataRefusedError(data)
        return _outcome(plan, mail, rcpts, data)  # raises SenderRefused or RecipientsRefused

    def _bdat_transaction(self, core: Connection, plan: _Plan) -> list[bytes]:
        """MAIL, the RCPTs, ``BDAT n LAST`` and the content, in pieces to write together."""
        parts = [core.send(c) for c in (plan.mail, *plan.rcpts)]
        parts += core.bdat_pieces(plan.content, last=True)
        return parts

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
        If the connection is lost, a message whose content left whole gets DeliveryUnknownError
        (never to be sent again), every other message without a final reply the error itself.
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
                results.append(exc)
                _fill(plans, results, _not_sent(exc))
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
        carried: _Carried | None = None
        started = False
        try:
            for item in [*plans, None]:  # None: flush the last message's content
                if isinstance(item, SMTPError):
                    if carried is not None:  # keep results in order: finish the previous one
                        self._start_message_clock()
                        await self._chain(carried, None, started, results)
                        carried = None
                    results.append(item)
                    continue
                if item is None and carried is None:
                    break
                self._start_message_clock()
                carried = await self._chain(carried, item, started, results)
                started = started or item is not None
        except SMTPError as exc:
            _fill(plans, results, exc)
        finally:
            self._deadline = None

    async def _chain(
        self,
        carried: _Carried | None,
        item: _Plan | None,
        started: bool,
        results: list[SendResult | SMTPError],
    ) -> _Carried | None:
        """One write: ``carried``'s content, then RSET and ``item``'s envelope and DATA.

        ``carried`` is judged (its result appended); ``item`` too if its DATA was refused,
        else it is returned, to be carried by the next write. On a lost connection this
        appends ``carried``'s result and raises the error for ``item`` and the rest.
        """
        core = await self._begin()
        out = bytearray()
        if carried is not None:
            out += core.send(DataContent(carried.plan.content))
        content_end = len(out)
        if item is not None:
            if started:  # the previous transaction may have failed: start clean
                out += core.send(_RSET)
            for command in (item.mail, *item.rcpts, Data()):
                out += core.send(command)
        try:
            await self._write(bytes(out))
        except SMTPError as exc:
            if carried is not None and self._answered:  # its reply came before the failure
                answer = self._answered[0]
                if answer.code == 421:
                    raise ServerDisconnected(f"server closed the connection: {answer}") from exc
                results.append(_judge(carried.plan, carried.mail, carried.rcpts, answer))
            elif carried is not None and self._sent >= content_end:
                results.append(unknown(exc))  # its content had left whole
            raise
        final: Reply | None = None
        if carried is not None:
            try:
                final = await self._read_reply()
            except DeliveryUnknownError as exc:
                results.append(exc)
                raise _not_sent(exc) from None
        try:
            if item is None:
                await self._verify_final()
            else:
                if started:
                    await self._read_reply()  # RSET's reply says nothing about the message
                mail, rcpts, data = await self._read_transaction(item)
                await self._verify_idle()
        except SMTPError as exc:
            if carried is not None and final is not None:
                # Out of step: its reply came in a group of replies shown to be wrong.
                stands = not _out_of_step(exc)
                results.append(
                    _judge(carried.plan, carried.mail, carried.rcpts, final)
                    if stands
                    else (exc if isinstance(exc, DeliveryUnknownError) else unknown(exc))
                )
            raise _not_sent(exc) from None
        if carried is not None and final is not None:
            results.append(_judge(carried.plan, carried.mail, carried.rcpts, final))
        if item is None:
            return None
        envelope_ok = mail.is_positive and any(r.is_positive for r in rcpts)
        if data.code == 354 and envelope_ok:
            return _Carried(item, mail, rcpts)
        if data.code == 354:  # RFC 2920 §3.1: leave the data state with a lone "."
            core = await self._begin()
            await self._write(core.send(DataContent(b"", abort=True)))
            await self._read_reply()
        if envelope_ok:
            results.append(DataRefusedError(data))
        else:
            results.append(_judge(item, mail, rcpts, data))  # the refusal
        return None

    async def _send_bursts(
        self, plans: Sequence[_Plan | SMTPError], results: list[SendResult | SMTPError]
    ) -> None:
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
            first = len(results)
            try:
                core = await self._begin()
                # The burst's pieces, joined once (a message's content is copied once, however
                # big: a 50 KB attachment in a burst of 50 would otherwise be copied 3 times).
                out: list[bytes] = []
                length = 0
                resets: list[bool] = []
                ends: list[int] = []  # where each transaction's content ends in the write
                for item in burst:
                    # RSET before every transaction but the first: the previous one may have
                    # failed in a way that leaves the server inside a transaction.
                    resets.append(started and isinstance(item, _Plan))
                    if isinstance(item, _Plan):
                        if started:
                            out.append(core.send(_RSET))
                            length += len(out[-1])
                        pieces = self._bdat_transaction(core, item)
                        out += pieces
                        length += sum(map(len, pieces))
                        started = True
                    ends.append(length)
                self._start_message_clock()  # a burst is bounded like one message
                try:
                    await self._write(b"".join(out))
                except SMTPError as exc:
                    self._judge_written(burst, resets, ends, results, exc)
                    raise
                try:
                    for item, reset in zip(burst, resets, strict=True):
                        if isinstance(item, SMTPError):
                            results.append(item)
                            continue
                        if reset:
                            await self._read_reply()  # RSET's reply says nothing about the message
                        mail, rcpts, final = await self._read_transaction(item)
                        results.append(_judge(item, mail, rcpts, final))
                        failed_last = isinstance(results[-1], ReplyError)
                    await self._verify_final()
                except SMTPError as exc:
                    error = exc
                    if _out_of_step(exc):  # no reply of this burst can be trusted
                        del results[first:]
                        error = exc if isinstance(exc, DeliveryUnknownError) else unknown(exc)
                    # The rest of the burst: unknown; or, after a 421, refused with it.
                    done = len(results) - first
                    results.extend(i if isinstance(i, SMTPError) else error for i in burst[done:])
                    raise _not_sent(error) from None
            except SMTPError as exc:
                _fill(plans, results, exc)
                return
            finally:
                self._deadline = None
        if failed_last:
            await self._reset()

    def _judge_written(
        self,
        burst: Sequence[_Plan | SMTPError],
        resets: Sequence[bool],
        ends: Sequence[int],
        results: list[SendResult | SMTPError],
        error: SMTPError,
    ) -> None:
        """After a burst's write failed: judge each transaction by the replies that had come
        in; one with no final reply is unknown if it was written whole. Stops at the first
        transaction neither answered nor written whole (it and the rest were not sent), or
        at a 421 (the server took in nothing after it)."""
        replies = self._answered
        at = 0
        for item, reset, end in zip(burst, resets, ends, strict=True):
            if isinstance(item, SMTPError):
                results.append(item)
                continue
            need = int(reset) + len(item.rcpts) + 2
            mine = replies[at : at + need]
            if any(r.code == 421 for r in mine):
                return
            if len(mine) == need:
                at += need
                mine = mine[int(reset) :]
                results.append(_judge(item, mine[0], mine[1:-1], mine[-1]))
            elif end <= self._sent:
                at = len(replies)
                results.append(unknown(error))
            else:
                return
