"""Named mailers (Django 6.1's ``MAILERS`` setting): ``mailers["alias"]`` gives a backend.

``MAILERS = {"default": {"BACKEND": "mailout.backends.smtp.EmailBackend",
"OPTIONS": {"host": "smtp.example.com"}}}``. Without ``MAILERS``, the alias ``"default"`` is
built from the ``EMAIL_*`` settings, so the older style keeps working unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from mailout.conf import settings
from mailout.exceptions import ImproperlyConfigured, InvalidMailer, MailerDoesNotExist
from mailout.utils import import_string

if TYPE_CHECKING:
    from mailout.backends.base import BaseEmailBackend

__all__ = ["DEFAULT_MAILER_ALIAS", "Mailers", "mailers"]

DEFAULT_MAILER_ALIAS = "default"
_KEYS = frozenset({"BACKEND", "OPTIONS"})


class Mailers:
    """Mapping-like access to the configured mailers; each lookup builds a new backend.

    A backend holds a connection, so unlike caches they are not shared between callers.
    """

    def _config(self) -> dict[str, Any]:
        return dict(settings.MAILERS)

    def __contains__(self, alias: object) -> bool:
        config = self._config()
        return alias in config or (not config and alias == DEFAULT_MAILER_ALIAS)

    def __iter__(self) -> Iterator[str]:
        return iter(self._config() or [DEFAULT_MAILER_ALIAS])

    def __getitem__(self, alias: str) -> BaseEmailBackend:
        return self.create(alias)

    def create(self, alias: str, **overrides: Any) -> BaseEmailBackend:
        """Build mailer ``alias``; ``overrides`` (e.g. ``fail_silently``) win over its OPTIONS."""
        config = self._config()
        if not config:
            if alias != DEFAULT_MAILER_ALIAS:
                raise MailerDoesNotExist(
                    f"mailer {alias!r} does not exist: MAILERS is not set, only 'default' is"
                )
            return _build("EMAIL_BACKEND", settings.EMAIL_BACKEND, overrides)
        if alias not in config:
            known = ", ".join(repr(a) for a in config)
            raise MailerDoesNotExist(f"mailer {alias!r} does not exist; MAILERS defines {known}")
        entry = config[alias]
        where = f"MAILERS[{alias!r}]"
        if not isinstance(entry, Mapping):
            raise InvalidMailer(f"{where}: expected a mapping with BACKEND and OPTIONS")
        unknown = set(entry) - _KEYS
        if unknown:
            raise InvalidMailer(
                f"{where}: unknown keys {sorted(unknown)}; allowed: BACKEND, OPTIONS"
            )
        if "BACKEND" not in entry:
            raise InvalidMailer(f"{where}: BACKEND is required")
        options = entry.get("OPTIONS", {})
        if not isinstance(options, Mapping):
            raise InvalidMailer(f"{where}['OPTIONS']: expected a mapping of keyword arguments")
        return _build(f"{where}['BACKEND']", entry["BACKEND"], {**options, **overrides})


def _build(where: str, path: object, options: Mapping[str, Any]) -> BaseEmailBackend:
    try:
        backend_class = import_string(path, setting=where)  # type: ignore[arg-type]
    except ImproperlyConfigured as exc:
        if where == "EMAIL_BACKEND":
            raise
        raise InvalidMailer(str(exc)) from None
    try:
        return backend_class(**options)  # type: ignore[no-any-return]
    except TypeError as exc:
        raise InvalidMailer(f"{where}: {path} does not accept these OPTIONS ({exc})") from None


mailers = Mailers()
