"""``EMAIL_URL``: one URL that stands for the SMTP (or another backend's) settings.

``smtp://user:pass@host:587?tls=starttls``, ``smtps://…`` (implicit TLS), ``submission://…``,
``console:``, ``file:///path``, ``locmem:``, ``dummy:``; ``?timeout=10`` with any scheme.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import parse_qs, unquote, urlsplit

from mailout.exceptions import ImproperlyConfigured

__all__ = ["BACKENDS", "URL_SETTINGS", "parse_email_url"]

BACKENDS: Final = {
    "smtp": "mailout.backends.smtp.EmailBackend",
    "console": "mailout.backends.console.EmailBackend",
    "filebased": "mailout.backends.filebased.EmailBackend",
    "locmem": "mailout.backends.locmem.EmailBackend",
    "dummy": "mailout.backends.dummy.EmailBackend",
}

# The settings EMAIL_URL can stand for (parse_email_url); the others never look it up.
URL_SETTINGS: Final = frozenset(
    {
        "EMAIL_BACKEND",
        "EMAIL_HOST",
        "EMAIL_PORT",
        "EMAIL_HOST_USER",
        "EMAIL_HOST_PASSWORD",
        "EMAIL_USE_TLS",
        "EMAIL_USE_SSL",
        "EMAIL_TIMEOUT",
        "EMAIL_FILE_PATH",
    }
)


def parse_email_url(url: str) -> dict[str, object]:
    """Expand ``EMAIL_URL`` into the settings it stands for.

    ``smtp://user:pass@host:587?tls=starttls``, ``smtps://…`` (implicit TLS), ``console:``,
    ``file:///path``, ``locmem:``, ``dummy:``; ``?timeout=10`` is accepted with any scheme.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ImproperlyConfigured(f"EMAIL_URL: cannot parse {_mask_url(url)!r} ({exc})") from None
    scheme = parts.scheme.lower()
    query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    out: dict[str, object] = {}
    if scheme in ("smtp", "smtps", "submission"):
        out["EMAIL_BACKEND"] = BACKENDS["smtp"]
        out["EMAIL_HOST"] = parts.hostname or "localhost"
        out["EMAIL_USE_SSL"] = scheme == "smtps"
        tls = query.get("tls", "").lower()
        if tls not in ("", "starttls", "ssl", "implicit", "none"):
            raise ImproperlyConfigured(
                f"EMAIL_URL: tls={tls!r} is not one of starttls, ssl, implicit, none"
            )
        out["EMAIL_USE_TLS"] = tls == "starttls" or (scheme == "submission" and tls == "")
        if tls in ("ssl", "implicit"):
            out["EMAIL_USE_SSL"] = True
        default_port = 465 if out["EMAIL_USE_SSL"] else 587 if out["EMAIL_USE_TLS"] else 25
        out["EMAIL_PORT"] = port if port is not None else default_port
        if parts.username:
            out["EMAIL_HOST_USER"] = unquote(parts.username)
        if parts.password:
            out["EMAIL_HOST_PASSWORD"] = unquote(parts.password)
    elif scheme == "file":
        out["EMAIL_BACKEND"] = BACKENDS["filebased"]
        out["EMAIL_FILE_PATH"] = unquote(parts.path) or None
    elif scheme in ("console", "locmem", "dummy"):
        out["EMAIL_BACKEND"] = BACKENDS[scheme]
    else:
        raise ImproperlyConfigured(
            f"EMAIL_URL: unknown scheme {scheme!r}; use smtp, smtps, submission, console, file, "
            "locmem or dummy"
        )
    if "timeout" in query:
        out["EMAIL_TIMEOUT"] = query["timeout"]
    return out


def _mask_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(":" + parts.password + "@", ":***@", 1)
    return url
