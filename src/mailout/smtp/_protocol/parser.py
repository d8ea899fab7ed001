"""Incremental parser of SMTP replies: feed bytes in, take complete replies out."""

from __future__ import annotations

import re

from mailout.exceptions import SMTPProtocolError
from mailout.smtp._protocol.reply import Reply

__all__ = ["ReplyParser"]

# RFC 5321 §4.2: Reply-code = %x32-35 %x30-35 %x30-39, then SP or "-" (or nothing, §4.2.1).
_LINE = re.compile(rb"([2-5][0-5][0-9])(?:([ -])(.*))?\Z", re.DOTALL)
# RFC 3463 §2 status-code = class "." subject "." detail; RFC 2034 §4 puts it after the code.
_ENHANCED = re.compile(r"([245])\.(\d{1,3})\.(\d{1,3})(?: +|\Z)")
# Every valid reply code, as its three wire bytes, for the single-line fast path.
_CODES: dict[bytes, int] = {b"%d" % code: code for code in range(200, 600) if code % 100 // 10 <= 5}
_CLASS: dict[int, str] = {code: str(code)[0] for code in _CODES.values()}
# The class an enhanced code must carry for each reply code; _ENHANCED allows only 2, 4 and 5.
_ENHANCED_CLASS: dict[int, str] = {c: k for c, k in _CLASS.items() if k in "245"}
_DIGITS = frozenset("0123456789")
_CACHED_LINE = 128  # longer single-line replies are parsed each time
_CACHED_REPLIES = 32  # per verb


class ReplyParser:
    """Turns a byte stream into :class:`Reply` objects.

    Limits keep a hostile server from making us buffer without end: RFC 5321 §4.5.3.1.5 caps a
    reply line at 512 octets, we allow ``max_line`` to be kind to sloppy servers.
    """

    def __init__(
        self, *, max_line: int = 2048, max_lines: int = 64, max_size: int = 64 * 1024
    ) -> None:
        self.max_line = max_line
        self.max_lines = max_lines
        self.max_size = max_size
        # RFC 2034 §3: enhanced codes are only parsed once the server has advertised them.
        self._enhanced = False
        # Replies are immutable, and a pipelined burst gets the same few ("250 2.1.0 OK" to
        # every MAIL): a single-line reply is parsed once per (verb, line) and then shared.
        self._replies: dict[str, dict[bytes, Reply]] = {}
        self._buffer = bytearray()
        self._lines: list[tuple[int, str]] = []
        self._size = 0

    @property
    def enhanced_status_codes(self) -> bool:
        return self._enhanced

    @enhanced_status_codes.setter
    def enhanced_status_codes(self, value: bool) -> None:
        self._enhanced = value
        self._replies.clear()  # the same line parses differently now

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def clear(self) -> None:
        """Drop everything buffered (RFC 3207 §4.2: nothing read before TLS may be trusted)."""
        self._buffer.clear()
        self._lines.clear()
        self._size = 0
        self._replies.clear()

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def next_reply(self, command: str = "") -> Reply | None:
        """Return the next complete reply, or None if more bytes are needed.

        ``command`` is the verb the reply answers; the connection passes it so that the reply
        is built once, already paired.
        """
        buffer = self._buffer
        while True:
            end = buffer.find(b"\n")
            if end < 0:
                if len(buffer) > self.max_line:
                    raise SMTPProtocolError(f"reply line longer than {self.max_line} bytes")
                return None
            if end + 1 > self.max_line:
                raise SMTPProtocolError(f"reply line longer than {self.max_line} bytes")
            if not self._lines and end >= 4 and buffer[3] == 0x20:
                # Fast path for the usual single-line reply ("250 2.1.0 OK"): a valid code and
                # a space; it takes the same checks as the general path below.
                line = bytes(buffer[: end + 1]) if end < _CACHED_LINE else None
                known = self._replies.get(command)
                # (the limits below apply to a known line too; past them it is refused there)
                fits = end + 1 <= self.max_size and self.max_lines >= 1
                if line is not None and known is not None and line in known and fits:
                    del buffer[: end + 1]
                    return known[line]
                code = _CODES.get(bytes(buffer[:3]))
                if code is not None:
                    if end + 1 > self.max_size or self.max_lines < 1:
                        raise SMTPProtocolError(
                            f"reply longer than {self.max_lines} lines or {self.max_size} bytes"
                        )
                    # A bare LF as line end is tolerated on input, CR is dropped.
                    stop = end - 1 if buffer[end - 1] == 0x0D else end
                    text = buffer[4:stop].decode("utf-8", errors="replace")
                    del buffer[: end + 1]
                    reply = self._reply(code, [text], command)
                    if line is not None:
                        if known is None or len(known) >= _CACHED_REPLIES:
                            known = self._replies[command] = {}
                        known[line] = reply
                    return reply
            raw = bytes(buffer[:end])
            del buffer[: end + 1]
            # A bare LF as line end is tolerated on input (robustness principle), CR is dropped.
            if raw.endswith(b"\r"):
                raw = raw[:-1]
            code, more, text = self._parse_line(raw)
            self._size += end + 1
            self._lines.append((code, text))
            if len(self._lines) > self.max_lines or self._size > self.max_size:
                raise SMTPProtocolError(
                    f"reply longer than {self.max_lines} lines or {self.max_size} bytes"
                )
            if not more:
                return self._finish(command)

    def _parse_line(self, raw: bytes) -> tuple[int, bool, str]:
        match = _LINE.match(raw)
        if match is None:
            raise SMTPProtocolError(f"malformed reply line: {raw[:80]!r}")
        code = int(match[1])
        if self._lines and self._lines[0][0] != code:
            # RFC 5321 §4.2.1: every line of a multi-line reply carries the same code.
            raise SMTPProtocolError(
                f"reply code changed within a multi-line reply: {self._lines[0][0]} then {code}"
            )
        text = (match[3] or b"").decode("utf-8", errors="replace")
        return code, match[2] == b"-", text

    def _finish(self, command: str) -> Reply:
        code = self._lines[0][0]
        texts = [text for _, text in self._lines]
        self._lines = []
        self._size = 0
        return self._reply(code, texts, command)

    def _reply(self, code: int, texts: list[str], command: str) -> Reply:
        enhanced: str | None = None
        if self.enhanced_status_codes:
            first = texts[0]
            if (
                len(texts) == 1
                and len(first) > 5
                and first[5] == " "
                and first[1] == "."
                and first[3] == "."
                and first[0] == _ENHANCED_CLASS.get(code)
                and first[2] in _DIGITS
                and first[4] in _DIGITS
            ):
                # The usual "2.1.0 OK" on one line: what the general path finds, without regex.
                return Reply(code, first[6:].lstrip(" "), first[:5], command)
            found = _ENHANCED.match(first)
            # RFC 3463 §2: the class must agree with the first digit of the reply code.
            if found is not None and found[1] == _CLASS[code]:
                enhanced = f"{found[1]}.{int(found[2])}.{int(found[3])}"
                # RFC 2034 §4: each line repeats the code; strip it where it is present.
                stripped = []
                for text in texts:
                    m = _ENHANCED.match(text)
                    stripped.append(text[m.end() :] if m is not None else text)
                texts = stripped
        return Reply(code, "\n".join(texts), enhanced, command)
