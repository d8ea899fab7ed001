"""mailout's SMTP client, sync and asyncio, with PIPELINING, CHUNKING and SMTPUTF8.

    from mailout.smtp import Envelope, SMTPClient

    with SMTPClient("mail.example.com", 587, use_tls=True, username=u, password=p) as client:
        result = client.send(Envelope("me@example.com", ("you@example.com",)), message_bytes)

``AsyncSMTPClient`` has the same methods as coroutines, with ``aclose()`` and ``async with``.
"""

from __future__ import annotations

from mailout.smtp._async.client import AsyncSMTPClient
from mailout.smtp._async.session import DATA_DONE_TIMEOUT
from mailout.smtp._models import Envelope, SendResult
from mailout.smtp._protocol.extensions import Extensions
from mailout.smtp._protocol.reply import Reply
from mailout.smtp._sync.client import SMTPClient

__all__ = [
    "DATA_DONE_TIMEOUT",
    "AsyncSMTPClient",
    "Envelope",
    "Extensions",
    "Reply",
    "SMTPClient",
    "SendResult",
]
