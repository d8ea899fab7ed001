"""Where a backend comes from: named mailers (Django 6.1's ``MAILERS``) and ``get_connection``.

``MAILERS = {"default": {"BACKEND": "mailout.backends.smtp.EmailBackend",
"OPTIONS": {"host": "smtp.example.com"}}}``; ``mailers["default"]`` builds a new backend with
``alias="default"`` and those OPTIONS (the ``EMAIL_*`` settings are then not read). Without a
``MAILERS`` setting, the alias ``"default"`` is built from ``EMAIL_BACKEND`` and the ``EMAIL_*``
settings, so the older style keeps working unchanged. ``MAILERS = {}`` means "no mailers".

Backends are imported here when first asked for, never when a message module is imported: a
message looks its backend up when it is sent.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, overload

from mailout import conf
from mailout.conf import settings
from mailout.exceptions import (
    ConflictingArgumentsError,
    ImproperlyConfigured,
    InvalidMailer,
    MailerDoesNotExist,
)
from mailout.utils import import_string

if TYPE_CHECKING:
    from mailout.backends.base import BaseEmailBackend

__all__ = [
    "DEFAULT_MAILER_ALIAS",
    "DEFAULT_MAILER_BACKEND",
    "Mailers",
    "check_arguments",
    "get_connection",
    "mailers",
]

DEFAULT_MAILER_ALIAS = "default"
#: The BACKEND of a MAILERS entry that names none (not related to the default mailer).
DEFAULT_MAILER_BACKEND = "mailout.backends.smtp.EmailBackend"
_KEYS = frozenset({"BACKEND", "OPTIONS"})
_MISSING = object()


class Mailers:
    """Mapping-like access to the configured mailers; each lookup builds a new backend.

    A backend holds a connection, so unlike caches they are not shared between callers.
    """

    @property
    def settings(self) -> dict[str, Any]:
        """The ``MAILERS`` setting (``{}`` when it is not set)."""
        return dict(settings.MAILERS)

    @property
    def is_configured(self) -> bool:
        """Whether ``MAILERS`` is set at all (``MAILERS = {}`` is set: it means no mailers;
        ``None`` is not)."""
        return conf.is_set("MAILERS") and conf.raw("MAILERS") is not None

    _is_configured = is_configured  # Django's name, which code written for Django reads

    def __contains__(self, alias: object, /) -> bool:
        return alias in self.settings

    def __iter__(self) -> Iterator[str]:
        return iter(self.settings)

    def __getitem__(self, alias: str, /) -> BaseEmailBackend:
        return self.create(alias)

    @overload
    def get(self, alias: str, /) -> BaseEmailBackend | None: ...
    @overload
    def get(self, alias: str, /, default: object) -> BaseEmailBackend | object: ...
    def get(self, alias: str, /, default: object = None) -> BaseEmailBackend | object:
        """``mailers[alias]``, or ``default`` if no such mailer is configured."""
        try:
            return self.create(alias)
        except MailerDoesNotExist:
            return default

    @property
    def default(self) -> BaseEmailBackend:
        """``mailers["default"]``."""
        return self.create(DEFAULT_MAILER_ALIAS)

    def create(self, alias: str, **overrides: Any) -> BaseEmailBackend:
        """Build mailer ``alias``; ``overrides`` (e.g. ``fail_silently``) win over its OPTIONS."""
        if not self.is_configured:
            if alias != DEFAULT_MAILER_ALIAS:
                raise MailerDoesNotExist(alias=alias)
            # The older style: the default mailer is EMAIL_BACKEND with the EMAIL_* settings.
            backend_class = import_string(settings.EMAIL_BACKEND, setting="EMAIL_BACKEND")
            return backend_class(**overrides)  # type: ignore[no-any-return]
        config = self.settings
        entry = config.get(alias, _MISSING)
        if entry is _MISSING:
            raise MailerDoesNotExist(alias=alias, known=config)
        if not isinstance(entry, Mapping):
            raise InvalidMailer("expected a mapping with BACKEND and OPTIONS", alias=alias)
        unknown = set(entry) - _KEYS
        if unknown:
            # A typo ("OPTION") must not leave the mailer silently unconfigured.
            raise InvalidMailer(
                f"unknown keys {sorted(unknown)}; allowed: BACKEND, OPTIONS", alias=alias
            )
        options = entry.get("OPTIONS", {})
        if not isinstance(options, Mapping):
            raise InvalidMailer("OPTIONS must be a mapping of keyword arguments", alias=alias)
        if "alias" in options:
            raise InvalidMailer("OPTIONS must not define 'alias'.", alias=alias)
        path = entry.get("BACKEND", DEFAULT_MAILER_BACKEND)
        try:
            backend_class = import_string(path, setting="BACKEND")
        except ImproperlyConfigured as exc:
            raise InvalidMailer(
                f"Could not find BACKEND {path!r}: {exc.__cause__ or exc}", alias=alias
            ) from exc
        return backend_class(alias=alias, **{**options, **overrides})  # type: ignore[no-any-return]


mailers = Mailers()


def get_connection(
    backend: str | None = None, fail_silently: bool = False, **kwds: Any
) -> BaseEmailBackend:
    """A backend instance: ``backend`` (a dotted path) or the configured default.

    Other keyword arguments go to the backend's constructor. With ``MAILERS`` set, this is the
    default mailer (``kwds`` override its OPTIONS) and a ``backend`` path is refused.
    """
    if fail_silently:
        kwds["fail_silently"] = fail_silently  # passed only when asked for, as Django does
    if mailers.is_configured:
        if backend is not None:
            raise RuntimeError(
                "get_connection(backend, ...) is not supported with MAILERS. Name a mailer "
                "(mailers[alias], using=alias) instead."
            )
        return mailers.create(DEFAULT_MAILER_ALIAS, **kwds)
    if backend is None:
        backend, where = settings.EMAIL_BACKEND, "EMAIL_BACKEND"
    else:
        where = "backend"
    backend_class = import_string(backend, setting=where)
    return backend_class(**kwds)  # type: ignore[no-any-return]


def check_arguments(
    *,
    using: str | None = None,
    connection: object = None,
    fail_silently: bool = False,
    auth_user: str | None = None,
    auth_password: str | None = None,
) -> None:
    """Refuse arguments that cannot all be honoured, before any lookup (Django 6.1's texts).

    ``using`` names a fully configured mailer, and ``connection`` is a backend already built:
    neither can take ``fail_silently`` or credentials, and they exclude each other.
    """
    auth = auth_user is not None or auth_password is not None
    if using is not None:
        if connection is not None:
            raise ConflictingArgumentsError("'connection' is not compatible with 'using'.")
        if fail_silently:
            raise ConflictingArgumentsError("'fail_silently' is not compatible with 'using'.")
        if auth:
            raise ConflictingArgumentsError(
                "'auth_user' and 'auth_password' are not compatible with 'using'. Set "
                "'username' and 'password' OPTIONS in MAILERS instead."
            )
    elif connection is not None:
        if fail_silently:
            raise ConflictingArgumentsError(
                "fail_silently cannot be used with a connection. Pass fail_silently to "
                "get_connection() instead."
            )
        if auth:
            raise ConflictingArgumentsError(
                "auth_user and auth_password cannot be used with a connection. Pass "
                "auth_user and auth_password to get_connection() instead."
            )
