"""Small helpers shared by messages and backends: the cached host name and dotted-path imports."""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import ipaddress
import socket
import threading
from collections.abc import Iterator
from typing import Any, Final
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from mailout.exceptions import ImproperlyConfigured

__all__ = [
    "DNS_NAME",
    "CachedDnsName",
    "import_string",
    "is_loopback",
    "lazy_text",
    "without_password",
]


def lazy_text(value: object) -> object:
    """``str(value)`` for a lazy string (Django's ``gettext_lazy`` and friends), else ``value``.

    Recognised by its class, ``django.utils.functional.Promise``, without importing Django.
    """
    if isinstance(value, str):
        return value
    for cls in type(value).__mro__:
        if cls.__name__ == "Promise" and cls.__module__ == "django.utils.functional":
            return str(value)
    return value


def is_loopback(host: str) -> bool:
    """``localhost``, or a loopback address (``127.0.0.0/8``, ``::1``, also in ``[…]`` form)."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class CachedDnsName:
    """The machine's fully qualified name, looked up once on first use (``getfqdn`` can be slow).

    As in Django, the name is cached in the ``_fqdn`` attribute: ``del DNS_NAME._fqdn`` forces
    a new lookup.
    """

    _fqdn: str

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def __str__(self) -> str:
        return self.get_fqdn()

    def get_fqdn(self) -> str:
        try:
            return self._fqdn
        except AttributeError:
            pass
        with self._lock:
            if not hasattr(self, "_fqdn"):
                name = socket.getfqdn() or "localhost"
                # Message-IDs travel in ASCII headers: encode an internationalised host name.
                try:
                    self._fqdn = name.encode("idna").decode("ascii")
                except UnicodeError:
                    self._fqdn = "localhost"
            return self._fqdn


DNS_NAME = CachedDnsName()


_DJANGO_BACKENDS = "django.core.mail.backends."
_OWN_BACKENDS = frozenset({"smtp", "console", "filebased", "locmem", "dummy"})
_AS_NAMED: contextvars.ContextVar[bool] = contextvars.ContextVar("as_named", default=False)


@contextlib.contextmanager
def django_backends_as_named(on: bool = True) -> Iterator[None]:
    """While active (in this thread or task), Django's backend paths import Django's classes:
    what the queue's worker does in a Django project, where its mailers get Django messages
    (mailout.django.delivery) and a project that names Django's smtp backend means it."""
    token = _AS_NAMED.set(on)
    try:
        yield
    finally:
        _AS_NAMED.reset(token)


def import_string(dotted_path: str, *, setting: str = "backend") -> Any:
    """Import ``package.module.Name``; a bad path raises ImproperlyConfigured naming ``setting``.

    Django's own backend paths (``django.core.mail.backends.smtp.EmailBackend``, as found in a
    Django settings module given to ``configure()``) stand for mailout's backend of that name:
    Django's classes cannot send mailout's messages (unless ``django_backends_as_named``).
    """
    if not isinstance(dotted_path, str) or "." not in dotted_path:
        raise ImproperlyConfigured(f"{setting}: {dotted_path!r} is not a dotted import path")
    if dotted_path.startswith(_DJANGO_BACKENDS) and not _AS_NAMED.get():
        name = dotted_path[len(_DJANGO_BACKENDS) :].partition(".")[0]
        if name in _OWN_BACKENDS:
            dotted_path = "mailout.backends." + dotted_path[len(_DJANGO_BACKENDS) :]
    module_path, _, name = dotted_path.rpartition(".")
    try:
        module = importlib.import_module(module_path)
    except ImportError as exc:
        raise ImproperlyConfigured(
            f"{setting}: cannot import module {module_path!r} ({exc})"
        ) from exc
    try:
        return getattr(module, name)
    except AttributeError:
        raise ImproperlyConfigured(
            f"{setting}: module {module_path!r} has no attribute {name!r}"
        ) from None


# libpq's parameters that hold a secret (a URL may carry them in its query string).
_SECRETS: Final = frozenset({"password", "sslpassword"})


def without_password(url: object) -> str:
    """``url`` as it may be shown (reprs, logs): no password in its user part or query."""
    text = str(url)
    if "://" not in text:
        return text
    parts = urlsplit(text)
    query = parse_qsl(parts.query, keep_blank_values=True)
    secret_query = any(k.lower() in _SECRETS for k, _ in query)
    if ":" not in parts.netloc.rpartition("@")[0] and not secret_query:
        return text  # nothing to hide (and urlunsplit would rewrite sqlite:/// as sqlite:/)
    userinfo, at, host = parts.netloc.rpartition("@")
    netloc = f"{userinfo.partition(':')[0]}@{host}" if at else host
    if secret_query:
        kept = [(k, v) for k, v in query if k.lower() not in _SECRETS]
        parts = parts._replace(query=urlencode(kept, quote_via=quote))
    return urlunsplit(parts._replace(netloc=netloc))
