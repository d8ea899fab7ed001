"""A caught message's own content, made safe to hand to a browser.

Nothing here trusts the mail: a media type is used only if it is a plain ``type/subtype``, a
file name only as RFC 6266 ``filename*``, ``cid:`` links only rewritten to the message's own
parts, and every page of its HTML or download goes out under a content security policy.
"""

from __future__ import annotations

import re
import urllib.parse

__all__ = [
    "DOWNLOAD_CSP",
    "HTML_CSP",
    "HTML_CSP_REMOTE",
    "content_disposition",
    "media_type",
    "rewrite_cids",
]

_MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*")
# cid: URLs in src=, background=, url(...) and the like (RFC 2392). The reference stops at
# anything that could end an attribute or a CSS token, so a rewrite can never break out of one.
_CID_URL = re.compile(r"\bcid:([^\s\"'<>()\\]+)", re.IGNORECASE)

# The message HTML: no script, no plugin, no form, no frame; images only from the message itself
# (cid: references are rewritten to /api/messages/{id}/cid/...) or data: URLs; inline styles.
# "sandbox" repeats the iframe's sandbox for someone who opens the URL in a tab of its own.
HTML_CSP = (
    "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; font-src data:; "
    "frame-ancestors 'self'; form-action 'none'; base-uri 'none'; sandbox"
)
# With "load remote content": images, styles and fonts from anywhere; still no script.
HTML_CSP_REMOTE = (
    "default-src 'none'; img-src * data:; style-src * 'unsafe-inline'; font-src * data:; "
    "frame-ancestors 'self'; form-action 'none'; base-uri 'none'; sandbox"
)
# Attachments and raw sources: never rendered as a page of this origin.
DOWNLOAD_CSP = "default-src 'none'; frame-ancestors 'none'; sandbox"


def media_type(value: str) -> str:
    """``value`` if it is a plain ``type/subtype``, else ``application/octet-stream``."""
    value = value.strip().lower()
    return value if _MEDIA_TYPE.fullmatch(value) else "application/octet-stream"


def content_disposition(filename: str | None, fallback: str) -> str:
    """``attachment`` with an ASCII ``filename`` and the exact UTF-8 ``filename*`` (RFC 6266).

    Control characters and path separators are dropped first, so no name can split the header
    or point a browser outside its download directory.
    """
    name = "".join(ch for ch in (filename or "") if ch.isprintable() and ch not in "/\\")
    name = name.strip().lstrip(".") or fallback
    ascii_name = "".join(ch if " " <= ch <= "~" and ch not in '"\\%;' else "_" for ch in name)
    quoted = urllib.parse.quote(name, safe="")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quoted}"


def rewrite_cids(html: str, message_id: int) -> str:
    """Point ``cid:`` references at the parts of the message they name (RFC 2392)."""

    def url(match: re.Match[str]) -> str:
        # "?" and "#" would end the path; everything else is already a URL (RFC 2392).
        cid = match.group(1).replace("?", "%3F").replace("#", "%23")
        return f"/api/messages/{message_id}/cid/{cid}"

    return _CID_URL.sub(url, html)
