"""A backend for tests: messages are appended to ``mailout.outbox``, looked up at send time."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mailout.backends.base import BaseEmailBackend
from mailout.wire import render_message

if TYPE_CHECKING:
    from mailout.message import EmailMessage

_lock = threading.Lock()


class EmailBackend(BaseEmailBackend):
    def __init__(self, fail_silently: bool = False, **kwargs: Any) -> None:
        super().__init__(fail_silently, **kwargs)
        import mailout

        if not hasattr(mailout, "outbox"):
            mailout.outbox = []

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        import mailout

        messages = list(email_messages)
        for message in messages:
            # Serialise it: bad input fails here exactly as it would with a real backend.
            render_message(message, smtputf8_ok=True)
        with _lock:
            # Looked up now, not at import, so a test may rebind mailout.outbox = [].
            if not hasattr(mailout, "outbox"):
                mailout.outbox = []
            mailout.outbox.extend(messages)
        return len(messages)
