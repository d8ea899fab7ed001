"""Staging safety: ``MAILOUT_REDIRECT_TO`` delivers every message to the given addresses instead.

With ``MAILOUT_REDIRECT_TO = ["qa@example.com"]`` in a project's settings, mailout.django's
backends send each message to those addresses only: the envelope holds them alone, ``To`` shows
them, ``Cc`` is removed (so that a reply-all from the QA inbox reaches no customer), and the
addresses the message was meant for are kept, as bare addr-specs that every one passed the
address parser (so no value can add a header line), in ``X-Mailout-Original-To``,
``X-Mailout-Original-Cc`` and ``X-Mailout-Original-Bcc``. It is applied where a message becomes
bytes and an envelope, so it holds for every way a message reaches the backend.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from mailout.address import parse_address
from mailout.exceptions import ImproperlyConfigured, MailoutError
from mailout.smtp import Envelope
from mailout.utils import lazy_text

__all__ = ["ORIGINAL_HEADERS", "SETTING", "Redirect", "current"]

SETTING: Final = "MAILOUT_REDIRECT_TO"
#: The header that keeps each original recipient field.
ORIGINAL_HEADERS: Final = {
    "to": "X-Mailout-Original-To",
    "cc": "X-Mailout-Original-Cc",
    "bcc": "X-Mailout-Original-Bcc",
}
#: Header names (lower case) a redirected message must not keep from its own headers.
REPLACED: Final = frozenset({"to", "cc", *(h.lower() for h in ORIGINAL_HEADERS.values())})


@dataclass(frozen=True, slots=True)
class Redirect:
    """Where every message goes instead of its recipients: addr-specs, checked."""

    recipients: tuple[str, ...]
    smtputf8: bool = False

    def envelope(self, envelope: Envelope) -> Envelope:
        """The same sender; the redirect's recipients instead of the message's."""
        return Envelope(envelope.sender, self.recipients, envelope.smtputf8 or self.smtputf8)

    def original_headers(self, message: Any) -> dict[str, str]:
        """``X-Mailout-Original-*`` for the recipient fields ``message`` fills (to, cc, bcc)."""
        headers = {}
        for field, header in ORIGINAL_HEADERS.items():
            values = getattr(message, field, None) or ()
            specs = [parse_address(value, field=field).addr_spec for value in values if value]
            if specs:
                headers[header] = ", ".join(specs)
        return headers

    def headers(self, extra: dict[str, Any], message: Any) -> dict[str, Any]:
        """``extra`` (a message's own headers) without To, Cc and earlier originals, plus the
        originals of ``message``."""
        kept = {name: value for name, value in extra.items() if name.lower() not in REPLACED}
        return {**kept, **self.original_headers(message)}


def current() -> Redirect | None:
    """The project's ``MAILOUT_REDIRECT_TO``, read now (so tests may override it), or None."""
    from django.conf import settings  # type: ignore[import-untyped]

    value = getattr(settings, SETTING, None)
    if not value:
        return None
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ImproperlyConfigured(
            f"{SETTING}: expected a list of email addresses, got {type(value).__name__} "
            f"{value!r:.60}"
        )
    items = tuple(lazy_text(item) for item in value)
    if all(isinstance(item, str) for item in items):
        return _parse(items)  # the usual case, parsed once
    return _parse.__wrapped__(items)  # raises ImproperlyConfigured naming the bad entry


@functools.lru_cache(maxsize=16)
def _parse(value: tuple[object, ...]) -> Redirect:
    try:
        parsed = [parse_address(item, field=SETTING) for item in value]
    except (MailoutError, ValueError, TypeError) as exc:
        raise ImproperlyConfigured(str(exc)) from None
    return Redirect(
        tuple(address.addr_spec for address in parsed),
        any(address.needs_smtputf8 for address in parsed),
    )
