"""A third-party-style email backend, written as an ESP's API backend is (anymail's, say): it
reads each Django message's fields, never its bytes, and keeps what it would have posted to the
provider's API. Recipients at ``later.example`` get a transient error, at ``rejected.example`` a
permanent one, as a provider's API answers."""

from __future__ import annotations

from typing import Any

from django.core.mail.backends.base import BaseEmailBackend

#: What each send_messages() call would have posted, in order.
posted: list[dict[str, Any]] = []


class ProviderError(Exception):
    def __init__(self, text: str, *, is_transient: bool) -> None:
        super().__init__(text)
        self.is_transient = is_transient


class ESPBackend(BaseEmailBackend):
    def __init__(self, *, api_key: str = "test-key", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.api_key = api_key

    def send_messages(self, email_messages: Any) -> int:
        count = 0
        for message in email_messages:
            recipients = message.recipients()
            if any(r.endswith("@later.example") for r in recipients):
                raise ProviderError("429 slow down", is_transient=True)
            if any(r.endswith("@rejected.example") for r in recipients):
                raise ProviderError("422 recipient suppressed", is_transient=False)
            posted.append(
                {
                    "from": message.from_email,
                    "to": list(message.to),
                    "cc": list(message.cc),
                    "bcc": list(message.bcc),
                    "reply_to": list(message.reply_to),
                    "subject": message.subject,
                    "text": message.body,
                    "html": [c for c, mimetype in message.alternatives if mimetype == "text/html"],
                    "attachments": [tuple(a) for a in message.attachments],
                    "headers": dict(message.extra_headers),
                    "recipients": recipients,
                }
            )
            count += 1
        return count
