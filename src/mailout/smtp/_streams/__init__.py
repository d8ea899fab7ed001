"""Byte streams the SMTP drivers talk through: asyncio and blocking sockets.

This is the one boundary where errors of ``socket``, ``ssl`` and ``asyncio`` become mailout's:
``OSError`` → :class:`SMTPConnectError`, timeouts → :class:`SMTPTimeoutError`,
``ssl.SSLError`` (certificate refused, handshake failed) → :class:`SMTPTLSError` (still an
``ssl.SSLError``), end of stream → :class:`ServerDisconnected`.
"""

from __future__ import annotations

READ_SIZE = 64 * 1024
