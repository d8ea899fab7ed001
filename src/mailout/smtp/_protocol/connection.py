"""The SMTP client state machine: one state table, one FIFO of commands awaiting replies.

The core does no I/O. ``send(command)`` returns the bytes to write; ``receive_data(bytes)``
takes what was read; ``next_reply()`` returns the next :class:`Reply` -- already paired with the
command that caused it -- or :data:`NEED_DATA`. Because every sent command is queued and replies
come back in order (RFC 2920 §3.1), a pipelined burst can never pair a reply with the wrong
command.

The client state is *optimistic*: sending MAIL moves to MAIL before the reply arrives, which is
what pipelining needs. Commands that must end a pipelined group (``pipelinable`` False) are
answered before anything else is sent, and their replies decide the next state
(:data:`_ON_REPLY`).

Pairing by order is only sound while the server answers each command once, after it was sent.
So the core refuses what shows the server out of step (:class:`SMTPProtocolError`, and the
session is over): a reply whose class the command cannot get (:data:`_REPLY_CLASSES`, e.g. a
250 to DATA), and any byte received while no reply is owed -- an early reply, such as a 250
sent right after 354 before the content (``check_idle()``; the driver first hands over what
already arrived, since the core cannot know when bytes came).
"""

from __future__ import annotations

import enum
from collections import deque
from typing import Final, Literal

from mailout.exceptions import ServerDisconnected, SMTPError, SMTPProtocolError
from mailout.smtp._protocol.commands import Bdat, Command, Greeting
from mailout.smtp._protocol.extensions import Extensions
from mailout.smtp._protocol.parser import ReplyParser
from mailout.smtp._protocol.reply import Reply

__all__ = ["NEED_DATA", "Connection", "LocalProtocolError", "Need", "State"]


class Need(enum.Enum):
    DATA = "NEED_DATA"


NEED_DATA: Final = Need.DATA


class LocalProtocolError(SMTPError, RuntimeError):
    """The caller tried to send a command the protocol does not allow now (a bug in the caller)."""


class State(enum.Enum):
    GREETING = "waiting for the greeting"
    CONNECTED = "greeted, before EHLO"
    READY = "after EHLO, no transaction"
    STARTTLS = "STARTTLS accepted, TLS handshake due"
    AUTH = "inside an AUTH exchange"
    MAIL = "MAIL sent"
    RCPT = "RCPT sent"
    CONTENT = "DATA accepted (354), content due"
    BDAT = "inside a BDAT transfer"
    CLOSED = "closed"

    # Members are singletons: identity hashes them in C (Enum's own __hash__ is Python code,
    # and the state table is looked up for every command sent).
    __hash__ = object.__hash__


S = State
_ANYTIME: dict[str, State] = {"QUIT": S.CLOSED}

# THE state table. _SEND[state][command kind] is the state once the command is sent;
# a kind missing from a state's row may not be sent in that state.
_SEND: Final[dict[State, dict[str, State]]] = {
    S.GREETING: {**_ANYTIME},
    S.CONNECTED: {"EHLO": S.CONNECTED, "HELO": S.CONNECTED, "NOOP": S.CONNECTED,
                  "RSET": S.CONNECTED, **_ANYTIME},
    S.READY: {"EHLO": S.READY, "HELO": S.READY, "NOOP": S.READY, "RSET": S.READY,
              "STARTTLS": S.READY, "AUTH": S.READY, "MAIL": S.MAIL, **_ANYTIME},
    S.STARTTLS: {},  # RFC 3207 §4: nothing but the TLS handshake may follow 220
    S.AUTH: {"AUTH-RESPONSE": S.AUTH},  # RFC 4954 §4: each 334 is answered by one line
    S.MAIL: {"RCPT": S.RCPT, "RSET": S.READY, "NOOP": S.MAIL, **_ANYTIME},
    # Data and BDAT may follow even if every RCPT failed: the server refuses them (RFC 2920 §3.1).
    S.RCPT: {"RCPT": S.RCPT, "DATA": S.RCPT, "BDAT": S.BDAT, "BDAT LAST": S.READY,
             "RSET": S.READY, "NOOP": S.RCPT, **_ANYTIME},
    S.CONTENT: {"CONTENT": S.READY},
    S.BDAT: {"BDAT": S.BDAT, "BDAT LAST": S.READY, "RSET": S.READY, "NOOP": S.BDAT, **_ANYTIME},
    S.CLOSED: {},
}  # fmt: skip

# _ON_REPLY[(command kind, reply class)] is the state after that reply, applied only when the
# answered command is the last one sent (otherwise the client has already moved on). Reply class
# is the first digit; "3" for DATA means exactly 354 (RFC 5321 §4.1.1.4).
_ON_REPLY: Final[dict[tuple[str, str], State]] = {
    ("GREETING", "2"): S.CONNECTED,
    ("EHLO", "2"): S.READY,
    ("HELO", "2"): S.READY,
    ("STARTTLS", "2"): S.STARTTLS,
    ("AUTH", "3"): S.AUTH, ("AUTH", "2"): S.READY, ("AUTH", "4"): S.READY, ("AUTH", "5"): S.READY,
    ("AUTH-RESPONSE", "3"): S.AUTH, ("AUTH-RESPONSE", "2"): S.READY,
    ("AUTH-RESPONSE", "4"): S.READY, ("AUTH-RESPONSE", "5"): S.READY,
    ("MAIL", "4"): S.READY, ("MAIL", "5"): S.READY,
    ("DATA", "3"): S.CONTENT, ("DATA", "4"): S.READY,
    ("DATA", "5"): S.READY,
}  # fmt: skip
_CLASS: Final = {2: "2", 3: "3", 4: "4", 5: "5"}  # reply class (first digit) by code // 100

# RFC 5321 §4.3.2: the reply classes each command can get (4xx and 5xx: transient and permanent
# refusals). Any other class means the replies are out of step with the commands -- an early or
# extra reply -- and pairing them further would credit one message with another's answer.
# 3xx is only for DATA (exactly 354) and AUTH; RSET can only succeed; a reply to DATA is never 2xx.
_REPLY_CLASSES: Final[dict[str, frozenset[int]]] = {
    "DATA": frozenset({3, 4, 5}),
    "AUTH": frozenset({2, 3, 4, 5}),
    "AUTH-RESPONSE": frozenset({2, 3, 4, 5}),
    "RSET": frozenset({2}),
}
_REFUSAL_OR_SUCCESS: Final = frozenset({2, 4, 5})


class Connection:
    """Client side of one SMTP session, without I/O."""

    def __init__(self, *, parser: ReplyParser | None = None) -> None:
        self.state = State.GREETING
        self.extensions = Extensions()
        self._parser = parser or ReplyParser()
        # RFC 5321 §3.1: the server speaks first; its greeting answers a pseudo-command.
        self._pending: deque[Command] = deque([Greeting()])
        self._commits = 0  # pending commands whose reply decides a message (Command.commits)

    @property
    def pending(self) -> tuple[Command, ...]:
        """Commands sent and not yet answered, oldest first."""
        return tuple(self._pending)

    @property
    def idle(self) -> bool:
        """No command awaits a reply."""
        return not self._pending

    @property
    def committing(self) -> bool:
        """An end of data (DATA content or BDAT LAST) was sent and is not answered yet.

        While it is, every reply before it may be held back until the server has taken the
        message in (a pipelining server may hold its replies until it has read the whole group,
        RFC 2920 §3.2), and a reply that never comes leaves the message's fate unknown.
        """
        return self._commits > 0

    def send(self, command: Command) -> bytes:
        """Check that ``command`` may be sent now, queue it for its reply, return its bytes."""
        if isinstance(command, Bdat):
            raise LocalProtocolError("use send_bdat() so that the chunk follows BDAT")
        return self._send(command)

    def send_bdat(self, chunk: bytes, *, last: bool) -> bytes:
        """``BDAT len(chunk) [LAST]`` followed by the chunk itself (RFC 3030 §2)."""
        return b"".join(self.bdat_pieces(chunk, last=last))

    def bdat_pieces(self, chunk: bytes, *, last: bool) -> tuple[bytes, bytes]:
        """``send_bdat()`` as (command line, chunk), for a caller that joins many at once."""
        return self._send(Bdat(len(chunk), last)), chunk

    def _send(self, command: Command) -> bytes:
        kind = command.kind
        next_state = _SEND[self.state].get(kind)
        if next_state is None:
            raise LocalProtocolError(f"cannot send {kind} in state {self.state.name}")
        pending = self._pending
        if not pending and kind != "QUIT":
            self.check_idle()
        if pending and kind != "QUIT":
            # RFC 2920 §3.1: only with PIPELINING, and never after a command that ends a group.
            if not self.extensions.pipelining:
                raise LocalProtocolError(f"cannot send {kind} before the previous reply")
            if not pending[-1].pipelinable:
                raise LocalProtocolError(
                    f"cannot send {kind} before the reply to {pending[-1].kind}"
                )
        data = command.encode()
        pending.append(command)
        if command.commits:
            self._commits += 1
        self.state = next_state
        return data

    def check_idle(self) -> None:
        """Raise if the server sent anything while no reply was owed (called before a command is
        sent; the driver first feeds in whatever has arrived).

        Such bytes answer nothing that was sent: paired with the next command, they would
        shift every reply after them onto the wrong command. RFC 5321 §3.8 allows one
        exception, ``421`` (the server is closing): :class:`ServerDisconnected`.
        """
        if self._pending or not self._parser.buffered:
            return
        self.state = State.CLOSED
        try:
            reply = self._parser.next_reply("")
        except SMTPProtocolError:
            reply = None
        if reply is not None and reply.code == 421:
            raise ServerDisconnected(f"server closed the connection: {reply}")
        raise SMTPProtocolError(
            "the server sent a reply before the command it could answer was sent: "
            "its replies are out of step with the commands"
        )

    def receive_data(self, data: bytes) -> None:
        self._parser.feed(data)

    def next_reply(self) -> Reply | Literal[Need.DATA]:
        pending = self._pending
        # The parser pairs the reply with the verb of the oldest pending command as it builds it.
        reply = self._parser.next_reply(pending[0].verb if pending else "")
        if reply is None:
            return NEED_DATA
        if not pending:
            # RFC 5321 §3.8: a server may send 421 at any time before closing.
            if reply.code == 421:
                self.state = State.CLOSED
                return reply
            raise SMTPProtocolError(f"unexpected reply with no command pending: {reply}")
        command = pending.popleft()
        if command.commits:
            self._commits -= 1
        if reply.code == 421:  # RFC 5321 §3.8: service not available, closing
            self.close()
            return reply
        kind = command.kind
        if reply.code // 100 not in _REPLY_CLASSES.get(kind, _REFUSAL_OR_SUCCESS) or (
            kind == "DATA" and reply.is_intermediate and reply.code != 354
        ):
            self.close()
            raise SMTPProtocolError(
                f"reply {reply.code} to {command.verb} is not a reply {command.verb} can get "
                "(RFC 5321 §4.3.2): the server's replies are out of step with the commands"
            )
        if not pending and self.state is not State.CLOSED:
            klass = _CLASS[reply.code // 100]
            self.state = _ON_REPLY.get((kind, klass), self.state)
        if (kind == "EHLO" or kind == "HELO") and reply.is_positive:
            self.extensions = Extensions.parse(reply) if kind == "EHLO" else Extensions()
            self._parser.enhanced_status_codes = self.extensions.enhanced_status_codes
        return reply

    def buffered_replies(self) -> list[Reply]:
        """Every reply already received whole, paired with its command, stopping at the first
        that is incomplete or out of step (or at a 421). For a failed write: the server may
        have answered the start of a pipelined group before the connection broke."""
        replies: list[Reply] = []
        while self._pending:
            try:
                reply = self.next_reply()
            except SMTPProtocolError:
                break
            if isinstance(reply, Need):
                break
            replies.append(reply)
        return replies

    def start_tls(self) -> None:
        """Call once the TLS handshake after STARTTLS is done.

        RFC 3207 §4.2: forget everything learnt before TLS, including any bytes already
        buffered (they may have been injected), and say EHLO again.
        """
        if self.state is not State.STARTTLS:
            raise LocalProtocolError(f"start_tls() in state {self.state.name}")
        self._parser.clear()
        self._parser.enhanced_status_codes = False
        self.extensions = Extensions()
        self.state = State.CONNECTED

    def close(self) -> None:
        """The connection is gone (QUIT, error, timeout): nothing more may be sent."""
        self.state = State.CLOSED
        self._pending.clear()
        self._commits = 0
