"""SMTP commands as immutable values that encode themselves to bytes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from mailout.exceptions import BadHeaderError
from mailout.smtp._protocol.content import encode_data

__all__ = [
    "Auth",
    "AuthResponse",
    "Bdat",
    "Command",
    "Data",
    "DataContent",
    "Ehlo",
    "Greeting",
    "Helo",
    "MailFrom",
    "Noop",
    "Quit",
    "RcptTo",
    "Rset",
    "StartTLS",
]


def _check(name: str, value: str, *, secret: bool = False) -> str:
    """Refuse CR, LF and NUL: they would end the line and inject a command (RFC 5321 §2.3.8)."""
    if "\r" in value or "\n" in value or "\0" in value:
        shown = "" if secret else f": {value!r}"
        raise BadHeaderError(f"{name} contains CR, LF or NUL{shown}")
    return value


check_argument = _check  # for drivers that check addresses before encoding any command


def _line(*parts: str) -> bytes:
    # Commands are ASCII unless SMTPUTF8 was negotiated (RFC 6531 §3.2); UTF-8 is the only sane
    # encoding either way, and the caller decides whether SMTPUTF8 is needed.
    return " ".join(parts).encode("utf-8") + b"\r\n"


class Command:
    """Base of every command.

    ``pipelinable`` follows RFC 2920 §3.1: commands that are False (EHLO, DATA, NOOP, QUIT,
    STARTTLS, AUTH …) may only be the last of a pipelined group, the client waits for their reply.
    """

    __slots__ = ()
    verb: ClassVar[str] = ""
    pipelinable: ClassVar[bool] = False

    @property
    def kind(self) -> str:
        """Key of this command in the state table of :mod:`connection`."""
        return self.verb

    @property
    def commits(self) -> bool:
        """Whether this command ends a message's content, so that its reply is the server's
        decision on the message: the end of data of RFC 5321 §4.5.3.2.6 (or BDAT LAST)."""
        return False

    def encode(self) -> bytes:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class Greeting(Command):
    """Pseudo-command the server's opening 220 reply answers (RFC 5321 §3.1)."""

    verb: ClassVar[str] = "GREETING"

    def encode(self) -> bytes:
        return b""


@dataclass(frozen=True, slots=True)
class Ehlo(Command):
    verb: ClassVar[str] = "EHLO"
    hostname: str

    def encode(self) -> bytes:
        return _line("EHLO", _check("hostname", self.hostname))


@dataclass(frozen=True, slots=True)
class Helo(Command):
    verb: ClassVar[str] = "HELO"
    hostname: str

    def encode(self) -> bytes:
        return _line("HELO", _check("hostname", self.hostname))


def _params(params: tuple[str, ...]) -> list[str]:
    for p in params:
        if not p or " " in p:
            raise BadHeaderError(f"parameter {p!r} is empty or contains a space")
        _check("parameter", p)
    return list(params)


def _envelope_line(text: str, params: tuple[str, ...], name: str, value: str) -> bytes:
    """``text`` and its parameters as a command line, checked as ``_check``/``_params`` would:
    one look at the whole line for CR, LF and NUL, then the exact error from the slow checks."""
    line = f"{text} {' '.join(params)}" if params else text
    if (
        "\r" in line
        or "\n" in line
        or "\0" in line
        or "" in params
        or line.count(" ") != (text.count(" ") + len(params))
    ):
        _check(name, value)
        return _line(text, *_params(params))  # raises for the parameter at fault
    return line.encode("utf-8") + b"\r\n"


# MAIL, RCPT and BDAT are made for every message sent: plain slotted classes (not frozen, whose
# __init__ costs four times more), treated as immutable all the same; ``kind`` and ``commits``
# are class attributes where they do not depend on the values.


@dataclass(slots=True)
class MailFrom(Command):
    verb: ClassVar[str] = "MAIL"
    kind: ClassVar[str] = "MAIL"
    commits: ClassVar[bool] = False
    pipelinable: ClassVar[bool] = True
    sender: str
    params: tuple[str, ...] = ()

    def encode(self) -> bytes:
        sender = self.sender
        return _envelope_line(f"MAIL FROM:<{sender}>", self.params, "sender", sender)


@dataclass(slots=True)
class RcptTo(Command):
    verb: ClassVar[str] = "RCPT"
    kind: ClassVar[str] = "RCPT"
    commits: ClassVar[bool] = False
    pipelinable: ClassVar[bool] = True
    recipient: str
    params: tuple[str, ...] = ()

    def encode(self) -> bytes:
        recipient = self.recipient
        return _envelope_line(f"RCPT TO:<{recipient}>", self.params, "recipient", recipient)


@dataclass(frozen=True, slots=True)
class Data(Command):
    verb: ClassVar[str] = "DATA"

    def encode(self) -> bytes:
        return b"DATA\r\n"


@dataclass(frozen=True, slots=True)
class DataContent(Command):
    """The message sent after a 354 reply to DATA; answered by one reply (RFC 5321 §4.1.1.4).

    RFC 2920 §3.1 allows content to be the first "command" of a group, hence pipelinable.
    ``abort=True`` marks the lone "." that leaves a DATA accepted for a transaction with no
    valid recipient (RFC 2920 §3.1): it delivers nothing, so it commits nothing.
    """

    verb: ClassVar[str] = "CONTENT"
    pipelinable: ClassVar[bool] = True
    content: bytes = field(repr=False)
    abort: bool = False

    @property
    def commits(self) -> bool:
        return not self.abort

    def encode(self) -> bytes:
        return encode_data(self.content)


@dataclass(slots=True)
class Bdat(Command):
    """``BDAT size [LAST]`` (RFC 3030 §2); the chunk of ``size`` octets follows the line.
    (Made for every message: see MailFrom.)"""

    verb: ClassVar[str] = "BDAT"
    pipelinable: ClassVar[bool] = True  # RFC 3030 §4.2: BDAT may be pipelined
    size: int
    last: bool = False

    @property
    def kind(self) -> str:
        return "BDAT LAST" if self.last else "BDAT"

    @property
    def commits(self) -> bool:
        return self.last

    def encode(self) -> bytes:
        if self.size < 0:
            raise ValueError(f"BDAT size must be >= 0, got {self.size}")
        return b"BDAT %d LAST\r\n" % self.size if self.last else b"BDAT %d\r\n" % self.size


@dataclass(frozen=True, slots=True)
class Rset(Command):
    verb: ClassVar[str] = "RSET"
    pipelinable: ClassVar[bool] = True

    def encode(self) -> bytes:
        return b"RSET\r\n"


@dataclass(frozen=True, slots=True)
class Noop(Command):
    verb: ClassVar[str] = "NOOP"

    def encode(self) -> bytes:
        return b"NOOP\r\n"


@dataclass(frozen=True, slots=True)
class Quit(Command):
    verb: ClassVar[str] = "QUIT"

    def encode(self) -> bytes:
        return b"QUIT\r\n"


@dataclass(frozen=True, slots=True)
class StartTLS(Command):
    verb: ClassVar[str] = "STARTTLS"

    def encode(self) -> bytes:
        return b"STARTTLS\r\n"


@dataclass(frozen=True, slots=True)
class Auth(Command):
    """``AUTH mechanism [initial-response]`` (RFC 4954 §4); the response is secret, never shown."""

    verb: ClassVar[str] = "AUTH"
    mechanism: str
    initial_response: str | None = field(default=None, repr=False)

    def encode(self) -> bytes:
        mech = _check("mechanism", self.mechanism)
        if self.initial_response is None:
            return _line("AUTH", mech)
        # RFC 4954 §4: an empty initial response is sent as "=".
        return _line("AUTH", mech, _check("response", self.initial_response, secret=True) or "=")


@dataclass(frozen=True, slots=True)
class AuthResponse(Command):
    """A line answering a 334 challenge (RFC 4954 §4); secret, never shown."""

    verb: ClassVar[str] = "AUTH"
    data: str = field(repr=False)

    @property
    def kind(self) -> str:
        return "AUTH-RESPONSE"

    def encode(self) -> bytes:
        return _check("response", self.data, secret=True).encode("ascii") + b"\r\n"
