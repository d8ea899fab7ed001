"""The catcher's aiosmtpd handler: each message received is stored, with a ``Received:`` line."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import TYPE_CHECKING

from aiosmtpd.smtp import Envelope, Session

from mailout.catcher import parse
from mailout.catcher.store import MessageStore, Summary
from mailout.catcher.views import MessageViews

if TYPE_CHECKING:
    from mailout.catcher.smtp import CatcherSMTP

__all__ = ["CatcherHandler"]

_HELO_SAFE = re.compile(r"[^A-Za-z0-9.\-_:\[\]]")


class CatcherHandler:
    """aiosmtpd handler: store each message, under every envelope recipient."""

    def __init__(
        self, store: MessageStore, *, hostname: str, views: MessageViews | None = None
    ) -> None:
        self.store = store
        self.hostname = hostname
        self.views = views
        self._pending: set[asyncio.Future[Summary]] = set()

    def store_message(self, mail_from: str, recipients: list[str], raw: bytes) -> Summary:
        """Read (bounded: parse.read never raises) and store; in a worker thread."""
        parsed = parse.read(raw)
        summary = self.store.add(mail_from, recipients, raw, parsed=parsed)
        if self.views is not None:
            self.views.keep(summary.id, len(raw), parsed)  # so that it is read only once
        return summary

    async def handle_DATA(self, server: CatcherSMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        raw = self.received_line(server, session) + content
        loop = asyncio.get_running_loop()
        # Parsing and writing a big message must not stall the other connections; shielded, so
        # a client that hangs up right after sending still has its message stored.
        future = loop.run_in_executor(
            None, self.store_message, envelope.mail_from or "", list(envelope.rcpt_tos), raw
        )
        self._pending.add(future)
        future.add_done_callback(self._pending.discard)
        summary = await asyncio.shield(future)
        return f"250 2.0.0 OK: message {summary.id} stored"

    async def drain(self, timeout: float = 10) -> None:
        """Wait until every message being stored is stored (for a clean shutdown)."""
        if self._pending:
            await asyncio.wait(list(self._pending), timeout=timeout)

    def received_line(self, server: CatcherSMTP, session: Session) -> bytes:
        """RFC 5321 §4.4: the trace line this server adds at the top of the message."""
        helo = _HELO_SAFE.sub("?", session.host_name or "unknown")[:255]
        peer = session.peer[0] if isinstance(session.peer, tuple) else "unknown"
        protocol = "ESMTP" if session.extended_smtp else "SMTP"
        if server.uses_tls:
            protocol += "S"
        if session.authenticated:
            protocol += "A"
        date = format_datetime(datetime.now(UTC))
        line = (
            f"Received: from {helo} ([{peer}]) by {self.hostname} (mailout) with {protocol}; {date}"
        )
        return line.encode("ascii", "replace") + b"\r\n"
