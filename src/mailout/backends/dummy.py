"""A backend that sends nothing and reports every message as sent."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from mailout.backends.base import BaseEmailBackend

if TYPE_CHECKING:
    from mailout.message import EmailMessage


class EmailBackend(BaseEmailBackend):
    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        return len(list(email_messages))
