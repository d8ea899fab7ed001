"""A backend for tests: messages are appended to ``mailout.outbox``, looked up at send time."""

from __future__ import annotations

import copy
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mailout.backends.base import BaseEmailBackend, checked_messages
from mailout.wire import render_message

if TYPE_CHECKING:
    from mailout.message import EmailMessage

_lock = threading.Lock()


class EmailBackend(BaseEmailBackend):
    """Keeps a copy of each message sent in ``mailout.outbox``, marked with ``sent_using``.

    A copy, as Django keeps: a test sees what was sent, even if the caller changes its message
    afterwards. ``sent_using`` is the MAILERS alias of this backend (None without one).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        import mailout

        if not hasattr(mailout, "outbox"):
            mailout.outbox = []

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        import mailout

        copies = []
        for message in checked_messages(email_messages):
            # Serialise it: bad input fails here exactly as it would with a real backend.
            render_message(message, smtputf8_ok=True)
            copies.append(_copy(message, self.alias))
        with _lock:
            # Looked up now, not at import, so a test may rebind mailout.outbox = [].
            if not hasattr(mailout, "outbox"):
                mailout.outbox = []
            mailout.outbox.extend(copies)
        return len(copies)


def _copy(message: EmailMessage, alias: str | None) -> EmailMessage:
    """A deep copy of ``message`` that shares its connection (a backend is not copied)."""
    connection = getattr(message, "connection", None)
    copied = copy.deepcopy(message, {id(connection): connection})
    copied.sent_using = alias  # type: ignore[attr-defined]
    return copied
