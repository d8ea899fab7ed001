"""What a queued message's page shows beyond its columns: its headers, decoded, and every
attempt per recipient with the server's reply (code, enhanced status, text, the relay's id)."""

from __future__ import annotations

import email.policy
from email.parser import BytesHeaderParser
from typing import Any, Final

from django.db.models import BinaryField, F, Func  # type: ignore[import-untyped]
from django.utils.html import format_html, format_html_join  # type: ignore[import-untyped]

from mailout.django.models import QueuedBody, QueueEvent, timestamp

__all__ = ["HEAD_BYTES", "attempts_table", "decoded_headers", "headers_table"]

#: The headers are read from the first bytes of the stored message, never all of it (a
#: message may be megabytes of attachments).
HEAD_BYTES: Final = 65536


def decoded_headers(head: bytes) -> list[tuple[str, str]]:
    """The header fields of a message's first bytes, RFC 2047 words decoded."""
    parsed = BytesHeaderParser(policy=email.policy.default).parsebytes(head)
    fields = []
    for name, value in parsed.items():
        try:
            text = str(value)
        except Exception:  # a malformed field is shown as stored
            text = repr(value)
        fields.append((name, text))
    return fields


def message_head(message_id: int, using: str) -> bytes | None:
    """The first ``HEAD_BYTES`` of a message's stored bytes (None once they were dropped)."""
    head = Func(F("data"), 1, HEAD_BYTES, function="substr", output_field=BinaryField())
    rows = (
        QueuedBody.objects.using(using)
        .filter(message_id=message_id)
        .annotate(head=head)
        .values_list("head", flat=True)
    )
    for value in rows:
        return bytes(value)
    return None


def headers_table(message_id: int, using: str) -> Any:
    head = message_head(message_id, using)
    if head is None:
        return "(the message's bytes were dropped after sending)"
    fields = decoded_headers(head)
    if not fields:
        return "(no header fields)"
    rows = format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", fields)
    return format_html('<table class="mailout-headers">{}</table>', rows)


_COLUMNS: Final = ("When", "Attempt", "What", "Recipient", "Code", "Status", "Reply", "Relay id")


def attempts_table(message_id: int, using: str) -> Any:
    events = QueueEvent.objects.using(using).filter(message_id=message_id).order_by("id")
    rows = [
        (
            timestamp(e.at).isoformat(sep=" ", timespec="seconds"),  # type: ignore[union-attr]
            e.attempt,
            e.kind,
            e.recipient or "",
            "" if e.code is None else e.code,
            e.enhanced or "",
            e.text,
            e.relay_id or "",
        )
        for e in events
    ]
    if not rows:
        return "(no attempt yet)"
    head = format_html_join("", "<th>{}</th>", ((c,) for c in _COLUMNS))
    body = format_html_join("", "<tr>" + "<td>{}</td>" * len(_COLUMNS) + "</tr>", rows)
    return format_html(
        '<table class="mailout-attempts"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>',
        head,
        body,
    )
