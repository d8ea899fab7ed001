"""RFC 2034 enhanced status codes for the catcher's replies that come without one.

aiosmtpd writes most replies itself, bare (``250 OK``); after EHLO, every 2xx, 4xx and 5xx
reply must carry a code (RFC 2034 §3), so one is added here from the command and the reply code.
"""

from __future__ import annotations

import re

__all__ = ["with_enhanced_code"]

_ENHANCED = re.compile(r"^\d{3}[ -]\d\.\d{1,3}\.\d{1,3}(?: |$)")
_REPLY = re.compile(r"^(\d{3})([ -]?)(.*)$", re.DOTALL)
# RFC 3463 codes for replies that come without one (mostly aiosmtpd's own).
_DEFAULT_CODES: dict[tuple[str | None, int], str] = {
    ("MAIL", 250): "2.1.0",
    ("RCPT", 250): "2.1.5",
    ("AUTH", 235): "2.7.0",
    ("VRFY", 252): "2.5.0",
    (None, 500): "5.5.2",
    (None, 501): "5.5.4",
    (None, 502): "5.5.1",
    (None, 503): "5.5.1",
    (None, 504): "5.5.4",
    (None, 530): "5.7.0",
    (None, 535): "5.7.8",
    (None, 538): "5.7.11",
    (None, 552): "5.3.4",
    (None, 553): "5.1.3",
    (None, 554): "5.7.0",
    (None, 555): "5.5.4",
    (None, 421): "4.3.2",
    (None, 454): "4.7.0",
}


def with_enhanced_code(status: str, command: str | None) -> str:
    """``status`` (a reply to ``command``) with an enhanced code, unless it has one or is not
    a 2xx, 4xx or 5xx reply."""
    match = _REPLY.match(status)
    if match is None or _ENHANCED.match(status):
        return status
    code = int(match.group(1))
    if code // 100 not in (2, 4, 5):
        return status
    enhanced = _DEFAULT_CODES.get((command, code)) or _DEFAULT_CODES.get(
        (None, code), f"{code // 100}.0.0"
    )
    separator = match.group(2) or " "
    return f"{code}{separator}{enhanced} {match.group(3)}".rstrip()
