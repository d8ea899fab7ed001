"""Bounded reads of a message's content from an SMTP client (DATA and BDAT).

Whatever a client sends, this holds at most the message's size limit plus one line: a line
longer than LINE_LIMIT is dropped as it arrives (the message is refused once its end comes),
and content over the limit, or a refused BDAT chunk, is read to its end and forgotten
(RFC 5321 §4.2.5: the reply comes after the data, so the data must be consumed).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["LINE_LIMIT", "READ_SIZE", "TOO_BIG", "read_chunk", "read_data"]

READ_SIZE = 64 * 1024
# A line of mail longer than RFC 5321's 1000 octets is kept rather than refused: the catcher shows
# what an application sent. Beyond this, it is refused (and the memory it could take is bounded).
LINE_LIMIT = 1024 * 1024

TOO_BIG = "552 5.3.4 Error: message size exceeds fixed maximum size"
_LINE_TOO_LONG = "500 5.5.2 Line too long (see RFC 5321 section 4.5.3.1.6)"


async def read_data(
    reader: asyncio.StreamReader, limit: int | None, alive: Callable[[], None]
) -> tuple[bytes, str | None]:
    """The content up to the lone ".", dot-unstuffed (RFC 5321 §4.5.2), or why it is refused.

    ``limit`` is the largest message kept (None: no limit); ``alive`` is called as lines come
    in, so that a slow but steady client is not timed out.
    """
    content = bytearray()
    refusal: str | None = None
    while True:
        try:
            line = await reader.readuntil(b"\r\n")
        except asyncio.LimitOverrunError as exc:
            # No CRLF within LINE_LIMIT: drop this much, then the rest of the line.
            await _drop_long_line(reader, exc.consumed, alive)
            refusal = _LINE_TOO_LONG
            content = bytearray()
            continue
        alive()
        if line == b".\r\n":
            return bytes(content), refusal
        if refusal is not None:
            continue
        content += line[1:] if line.startswith(b".") else line
        if limit and len(content) > limit:
            refusal = TOO_BIG
            content = bytearray()


async def _drop_long_line(
    reader: asyncio.StreamReader, consumed: int, alive: Callable[[], None]
) -> None:
    """Read and forget a line that outgrew the reader's limit, up to its CRLF."""
    dropped = await reader.readexactly(consumed)
    while not dropped.endswith(b"\r\n"):
        alive()
        if dropped.endswith(b"\r"):
            dropped = b"\r" + await reader.readexactly(1)  # a CRLF split across reads
            continue
        try:
            await reader.readuntil(b"\r\n")
            return
        except asyncio.LimitOverrunError as exc:
            dropped = await reader.readexactly(exc.consumed)


async def read_chunk(
    reader: asyncio.StreamReader, size: int, keep: bool, alive: Callable[[], None]
) -> bytes:
    """A BDAT chunk of ``size`` octets, exactly (RFC 3030: never dot-unstuffed); read and
    dropped when not ``keep``, so its bytes can never be taken for commands."""
    parts: list[bytes] = []
    remaining = size
    while remaining:
        # readexactly in bounded steps: a refused 50 MB chunk is drained, never held.
        piece = await reader.readexactly(min(remaining, READ_SIZE))
        remaining -= len(piece)
        if keep:
            parts.append(piece)
        alive()
    return b"".join(parts)
