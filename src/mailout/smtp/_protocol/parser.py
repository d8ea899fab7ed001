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
        self.enhanced_status_codes = False
        self._buffer = bytearray()
        self._lines: list[tuple[int, str]] = []
        self._size = 0

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def clear(self) -> None:
        """Drop everything buffered (RFC 3207 §4.2: nothing read before TLS may be trusted)."""
        self._buffer.clear()
        self._lines.clear()
        self._size = 0

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def next_reply(self) -> Reply | None:
        """Return the next complete reply, or None if more bytes are needed."""
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                if len(self._buffer) > self.max_line:
                    raise SMTPProtocolError(f"reply line longer than {self.max_line} bytes")
                return None
            if end + 1 > self.max_line:
                raise SMTPProtocolError(f"reply line longer than {self.max_line} bytes")
            raw = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
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
                return self._finish()

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

    def _finish(self) -> Reply:
        code = self._lines[0][0]
        texts = [text for _, text in self._lines]
        self._lines = []
        self._size = 0
        enhanced: str | None = None
        if self.enhanced_status_codes:
            found = _ENHANCED.match(texts[0])
            # RFC 3463 §2: the class must agree with the first digit of the reply code.
            if found is not None and found[1] == str(code)[0]:
                enhanced = f"{found[1]}.{int(found[2])}.{int(found[3])}"
                # RFC 2034 §4: each line repeats the code; strip it where it is present.
                stripped = []
                for text in texts:
                    m = _ENHANCED.match(text)
                    stripped.append(text[m.end() :] if m is not None else text)
                texts = stripped
        return Reply(code, "\n".join(texts), enhanced)
