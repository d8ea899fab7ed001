"""The asyncio SMTP client, hand-written."""

from __future__ import annotations

from mailout.smtp._async.client import AsyncSMTPClient

__all__ = ["AsyncSMTPClient"]
