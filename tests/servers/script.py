"""The declarative fault script of `FaultyServer`, and the records the server keeps.

A `Script` is plain frozen data: the greeting, the EHLO keywords, timing, and a list of `Rule`s.
Every time the server owes a reply it looks for the first rule that *matches* and is *armed*;
the points where a reply is owed are named by the line that asked for it:

- a command line as received, without CRLF (``"RCPT TO:<bad@example.com>"``);
- ``"."`` for the end of DATA content (the reply that accepts or refuses the message);
- a ``BDAT`` line is answered after its chunk has been read, so a rule matching
  ``"BDAT \\d+ LAST"`` answers for the whole message.

Rule patterns are regular expressions applied with `re.match` (anchored at the start, not the
end), case-insensitively. Counting (`after`, `times`) is per server, across all connections.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

Action = Literal["reply", "close", "drop", "hang", "lose"]

DEFAULT_EXTENSIONS: tuple[str, ...] = (
    "PIPELINING",
    "CHUNKING",
    "8BITMIME",
    "SMTPUTF8",
    "SIZE 10485760",
    "ENHANCEDSTATUSCODES",
    "STARTTLS",
    "AUTH PLAIN LOGIN",
)


@dataclass(frozen=True, slots=True)
class Rule:
    """What to do instead of (or on top of) the normal handling of matching commands.

    - `reply`: a reply such as ``"550 5.1.1 no such user"`` (lines separated by ``"\\n"`` become
      a multiline reply). It *replaces* the command's processing: the command has no effect
      (a refused RCPT adds no recipient; a refused ``"."`` or BDAT LAST records no message).
    - `raw`: bytes sent verbatim instead of any reply (garbage, an oversized line, a bare LF).
    - `action`: ``"reply"`` answer and go on; ``"close"`` answer, then close the connection;
      ``"drop"`` close without answering; ``"hang"`` never answer (the connection stays open
      until the client leaves or the server stops); ``"lose"`` process the command as usual
      (a ``"."`` or BDAT LAST stores the message), then close without writing any reply not
      yet sent: a final reply lost on the way, whose outcome the client cannot know. A ``421``
      reply always closes after it (RFC 5321 §3.8).
    - With neither `reply` nor `raw`, the command is processed normally; `delay`, `drop_after`
      and ``action="close"`` still apply.
    - `delay`: seconds to wait before answering, on top of `Script.delay` (for ``"."`` or BDAT
      LAST: before the message is stored, like a slow server that stores it in the end).
    - `extra`: bytes sent right after the reply, in the same write: an early or unsolicited
      reply. For DATA they follow the ``354``, before the content has been read.
    - `drop_after`: for DATA or BDAT, close the connection once this many bytes of the content
      that follows the command have been received (mid-DATA / mid-BDAT disconnect).
    - `after`: let this many matching commands through untouched before the rule arms.
    - `times`: then apply the rule to at most this many commands (``None``: forever).
    """

    match: str
    reply: str | None = None
    raw: bytes | None = None
    action: Action = "reply"
    delay: float = 0.0
    extra: bytes = b""
    drop_after: int | None = None
    after: int = 0
    times: int | None = None

    def __post_init__(self) -> None:
        try:  # fail at construction, in the test, not later in the server thread
            re.compile(self.match)
        except re.error as exc:
            raise ValueError(f"Rule.match: bad pattern {self.match!r}: {exc}") from None
        if self.action not in ("reply", "close", "drop", "hang", "lose"):
            raise ValueError(f"Rule.action: unknown action {self.action!r}")
        if self.reply is not None and self.raw is not None:
            raise ValueError("Rule: give reply or raw, not both")

    def matches(self, line: str) -> bool:
        return re.match(self.match, line, re.IGNORECASE) is not None

    @property
    def closes(self) -> bool:
        return self.action == "close" or (self.reply or "").startswith("421")


@dataclass(frozen=True, slots=True)
class Script:
    """How a `FaultyServer` behaves. The default is a correct, permissive ESMTP server.

    - `greeting`: the opening reply (``""``: ``220 <hostname> ESMTP ...``); ``bytes`` are sent
      verbatim; ``None`` never greets (hang).
      ``"421 4.3.2 busy"`` refuses the connection (the server closes after it).
    - `extensions`: EHLO keywords, in order. Drop ``"STARTTLS"`` to model STARTTLS stripping
      (the command is then refused with 502 as well). ``"SIZE n"`` is enforced on MAIL FROM.
    - `delay`: seconds before every write of replies. Replies to one batch of pipelined commands
      are written together, so this models one round trip per batch.
    - `lockstep`: answer each command with its own (delayed) write, even while advertising
      PIPELINING: the slow lock-step server a pipelining client must still cope with.
    - `starttls_inject`: bytes sent right after ``220`` to STARTTLS, before the TLS handshake
      (RFC 3207 §4.2 says the client must discard them).
    - `users`: AUTH PLAIN / LOGIN accounts, name to password.
    - `data_without_recipients`: answer DATA with ``354`` even when no recipient was accepted,
      and refuse the content afterwards (RFC 2920 §3.1 warns that servers may).
    - `hostname`: the name in the greeting and EHLO reply.
    - `greet_together`: hold every greeting until this many sessions are open at once, then
      greet them all: a client that opens its connections one after another (waiting for each
      greeting before the next connect) never gets one. ``0``: greet at once.
    """

    rules: Sequence[Rule] = ()
    greeting: str | bytes | None = ""
    extensions: Sequence[str] = DEFAULT_EXTENSIONS
    delay: float = 0.0
    lockstep: bool = False
    starttls_inject: bytes = b""
    users: Mapping[str, str] = field(default_factory=lambda: {"user": "password"})
    hostname: str = "faulty.test"
    data_without_recipients: bool = False
    greet_together: int = 0

    @property
    def greeting_bytes(self) -> bytes | None:
        if self.greeting is None:
            return None
        if isinstance(self.greeting, bytes):
            return self.greeting
        return format_reply(self.greeting or f"220 {self.hostname} ESMTP faulty ready")

    def keywords(self) -> set[str]:
        return {ext.split()[0].upper() for ext in self.extensions}

    def max_size(self) -> int | None:
        for ext in self.extensions:
            parts = ext.split()
            if parts[0].upper() == "SIZE" and len(parts) > 1 and parts[1] != "0":
                return int(parts[1])
        return None


def format_reply(text: str) -> bytes:
    """``"250-a\\n250 b"`` or ``"250 a\\nb"`` -> a well-formed (multiline) reply with CRLFs."""
    lines = text.split("\n")
    code = lines[0][:3]
    out = []
    for i, line in enumerate(lines):
        body = line[4:] if line[:3] == code and line[3:4] in (" ", "-", "") else line
        sep = " " if i == len(lines) - 1 else "-"
        out.append(f"{code}{sep}{body}\r\n")
    return "".join(out).encode("utf-8")


@dataclass(frozen=True, slots=True)
class Transaction:
    """One message the server accepted.

    `content` is the message exactly as received: after dot-unstuffing for DATA (without the
    terminating ``.`` line), the concatenated chunks for BDAT.
    """

    sender: str
    recipients: tuple[str, ...]
    content: bytes
    method: Literal["DATA", "BDAT"]
    mail_params: tuple[str, ...] = ()
    tls: bool = False
    user: str | None = None
