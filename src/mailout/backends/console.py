"""A backend for development: each message is written to a stream (standard output by default)."""

from __future__ import annotations

import sys
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TextIO

from mailout.backends.base import BaseEmailBackend, checked_messages
from mailout.wire import render_message

if TYPE_CHECKING:
    from mailout.message import EmailMessage

SEPARATOR = "-" * 79


class EmailBackend(BaseEmailBackend):
    def __init__(self, *args: Any, stream: TextIO | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._stream = stream
        self._lock = threading.RLock()

    @property
    def stream(self) -> TextIO:
        # Resolved when used, so redirecting sys.stdout (pytest's capsys) is honoured.
        return self._stream if self._stream is not None else sys.stdout

    @stream.setter
    def stream(self, value: TextIO) -> None:
        self._stream = value

    def render(self, message: EmailMessage) -> str:
        data = render_message(message, smtputf8_ok=True, linesep="\n")
        return data.decode("utf-8", errors="replace")

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        messages = checked_messages(email_messages)
        if not messages:
            return 0
        try:
            # Render everything before writing anything: a bad message stops the whole batch.
            texts = [self.render(m) for m in messages]
            with self._lock:
                stream_created = self.open()
                try:
                    for text in texts:
                        self.write_message(text)
                    self.stream.flush()
                finally:
                    if stream_created:
                        self.close()
        except Exception:
            if not self.fail_silently:
                raise
            return 0
        return len(messages)

    def write_message(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.write(SEPARATOR + "\n")
