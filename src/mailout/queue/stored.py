"""A queued message as any backend's ``send_messages()`` can take it: the stored bytes inside.

mailout's wire-level backends (console, file, locmem; ``mailout.wire.render``) write
``wire_bytes`` exactly as stored. A backend that reads fields instead (a custom one, an ESP
API) finds subject, from, to, cc, reply-to, bcc, the text body, an HTML alternative, the
attachments as MIME parts, and the stored ``Message-ID`` and ``Date`` in ``extra_headers``,
all read back from those bytes; ``message()`` parses them.
"""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage as StdMessage
from typing import Any

from mailout.message import EmailMultiAlternatives
from mailout.queue.models import ClaimedMessage

__all__ = ["QueuedMessage"]


class QueuedMessage(EmailMultiAlternatives):
    """A message read back from the queue. ``recipients()`` is its envelope (the recipients
    still to deliver); ``queue_id`` its id in the queue."""

    def __init__(self, claimed: ClaimedMessage) -> None:
        parsed = _parse(claimed.data)
        addresses = {
            name: [str(a) for a in getattr(parsed[name], "addresses", ())]
            for name in ("From", "To", "Cc", "Reply-To")
        }
        super().__init__(
            subject=str(parsed["Subject"] or ""),
            body=_text(parsed, "plain"),
            from_email=addresses["From"][0] if addresses["From"] else claimed.sender,
            to=addresses["To"],
            cc=addresses["Cc"],
            reply_to=addresses["Reply-To"],
            headers={name: str(parsed[name]) for name in ("Message-ID", "Date") if parsed[name]},
        )
        html = _text(parsed, "html")
        if html:
            self.attach_alternative(html, "text/html")
        self.attachments = list(parsed.iter_attachments())
        in_headers = {
            getattr(a, "addr_spec", "").lower()
            for name in ("To", "Cc")
            for a in getattr(parsed[name], "addresses", ())
        }
        self.bcc = [r for r in claimed.recipients if r.lower() not in in_headers]
        self.wire_bytes = claimed.data
        self.envelope = claimed.envelope()
        self.queue_id = claimed.id

    def recipients(self) -> list[str]:
        return list(self.envelope.recipients)

    def needs_smtputf8(self) -> bool:
        return self.envelope.smtputf8

    def message(
        self, *, policy: email.policy.EmailPolicy[Any] = email.policy.default
    ) -> StdMessage:
        return _parse(self.wire_bytes, policy)

    def __repr__(self) -> str:
        return f"<QueuedMessage {self.queue_id} subject={self.subject!r}>"


def _parse(data: bytes, policy: email.policy.EmailPolicy[Any] = email.policy.default) -> StdMessage:
    return email.message_from_bytes(data, policy=policy)


def _text(parsed: StdMessage, subtype: str) -> str:
    part = parsed.get_body(preferencelist=(subtype,))
    if part is None or part.get_content_subtype() != subtype:
        return ""
    content = part.get_content()
    # Line ends as Python strings write them ("\n"), as the message object had them.
    return content.replace("\r\n", "\n") if isinstance(content, str) else ""
