"""The queue in the project's own database: ``EMAIL_QUEUE_URL = "django"`` (``DATABASES
["default"]``) or ``"django:<alias>"``.

Two sides, one database:

* **Enqueueing** (``enqueuer(url)``) goes through Django's own connection of that alias, in the
  thread's current transaction: inside ``transaction.atomic()`` the mail is stored if and only
  if the transaction commits (a savepoint of it: a bad batch stores nothing and leaves the
  transaction usable); outside, each batch commits on its own. On PostgreSQL (psycopg 3, which
  Django ≥ 4.2 uses when installed) the rows and the ``NOTIFY`` that wakes idle workers are
  sent on Django's psycopg connection (mailout's ``bound_to`` path); PostgreSQL delivers a
  ``NOTIFY`` at commit only, so workers wake when the transaction commits and never for a
  rollback. On SQLite they go through Django's ``sqlite3`` connection; SQLite cannot wake
  another process, so workers find the mail at their next poll (``EMAIL_QUEUE_POLL_INTERVAL``,
  1 s).
* **The worker** (``open_storage("django")``: ``manage.py mailout queue worker``) opens the
  same database from the alias's settings with mailout's own storage: the SQLite file at
  ``NAME``, or the PostgreSQL server, database and schema (``current_schema()`` of Django's
  connection) that Django connects to.

The tables are created by ``manage.py migrate`` (migration ``mailout/0001_queue``).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterable
from typing import Any, Final, TextIO
from urllib.parse import quote, urlencode

from django.conf import settings as django_settings  # type: ignore[import-untyped]
from django.core.exceptions import (  # type: ignore[import-untyped]
    ImproperlyConfigured as DjangoImproperlyConfigured,
)
from django.db import DEFAULT_DB_ALIAS, connections  # type: ignore[import-untyped]
from django.utils.connection import ConnectionDoesNotExist  # type: ignore[import-untyped]

from mailout.exceptions import ImproperlyConfigured, SchemaVersionError, StorageError
from mailout.queue.models import NewMessage
from mailout.queue.sql import load
from mailout.queue.storage import Storage

__all__ = ["VENDORS", "DjangoStorage", "alias_of", "default_url", "enqueuer", "migrate"]

#: The databases the queue can live in (Django's ``connection.vendor``).
VENDORS: Final = ("sqlite", "postgresql")
MIGRATE: Final = "run `python manage.py migrate mailout`"


def _migrate() -> str:
    """What to do when the queue's tables are missing (the app first, if it is not installed:
    ``migrate mailout`` would say "No installed app with label 'mailout'")."""
    from django.apps import apps  # type: ignore[import-untyped]

    if not apps.ready or apps.is_installed("mailout.django"):  # ready: a plain CLI is not
        return MIGRATE
    return f'add "mailout.django" to INSTALLED_APPS, then {MIGRATE}'


# libpq takes these from Django's connection parameters; the others are psycopg's own.
_NOT_LIBPQ: Final = frozenset({"cursor_factory", "context", "prepare_threshold", "autocommit"})


def alias_of(url: str, *, setting: str = "EMAIL_QUEUE_URL") -> str:
    """The ``DATABASES`` alias of ``"django"`` or ``"django:<alias>"``, checked."""
    scheme, _, alias = url.partition(":")
    if scheme.lower() != "django":
        raise ImproperlyConfigured(f"{setting}: {url!r} is not 'django' or 'django:<alias>'")
    alias = alias or DEFAULT_DB_ALIAS
    try:
        django_settings.DATABASES  # noqa: B018 - loads the settings module, or says it cannot
    except DjangoImproperlyConfigured:  # `mailout queue worker --url django`, outside Django
        raise ImproperlyConfigured(
            f"{setting}: {url!r} is the queue in a Django project's database: run the command "
            "with the project's settings (python manage.py mailout queue …, or set "
            "DJANGO_SETTINGS_MODULE)"
        ) from None
    try:
        vendor = connections[alias].vendor
    except ConnectionDoesNotExist:
        known = ", ".join(repr(a) for a in connections.settings) or "none"
        raise ImproperlyConfigured(
            f"{setting}: {url!r} names no database: DATABASES has {known}"
        ) from None
    if vendor not in VENDORS:
        raise ImproperlyConfigured(
            f"{setting}: {url!r}: the queue lives in SQLite or PostgreSQL; DATABASES[{alias!r}] "
            f"is {vendor}: set EMAIL_QUEUE_URL to a sqlite:/// or postgresql:// queue"
        )
    return str(alias)


def default_url() -> str | None:
    """``"django"`` when the project's ``default`` database can hold the queue, else None."""
    try:
        vendor = connections[DEFAULT_DB_ALIAS].vendor
    except Exception:  # no DATABASES, or a broken one: not ours to report here
        return None
    return "django" if vendor in VENDORS else None


# -- producers: Django's connection ------------------------------------------------------------

_schemas: dict[tuple[str, int], str] = {}
_schemas_lock = threading.Lock()


def _pg_schema(alias: str, connection: Any) -> str:
    """The schema of Django's connection (cached per connection: a ``SELECT`` fewer per send)."""
    from mailout.django.schema import queue_schema

    key = (alias, id(connection.connection))
    with _schemas_lock:
        found = _schemas.get(key)
    if found is None:
        found = queue_schema(connection)
        with _schemas_lock:
            _schemas[key] = found
    return found


def _locked_hint(exc: StorageError, connection: Any) -> StorageError:
    """SQLite's "database is locked" in a transaction of Django's default (DEFERRED) mode: it
    read before it sent mail, a worker wrote since, and SQLite refuses the upgrade at once (no
    waiting). Django's IMMEDIATE mode takes the lock at the start and waits for it instead."""
    mode = str(connection.settings_dict.get("OPTIONS", {}).get("transaction_mode") or "")
    if "database is locked" not in str(exc) or mode.upper() in ("IMMEDIATE", "EXCLUSIVE"):
        return exc
    return StorageError(
        f"{exc} (a transaction that read before it sent mail, while a worker wrote: set "
        f'DATABASES[{connection.alias!r}]["OPTIONS"]["transaction_mode"] = "IMMEDIATE" so '
        "that it waits for the lock instead)"
    )


class DjangoEnqueuer:
    """``enqueue`` on Django's connection of ``alias``, in the calling thread's transaction."""

    def __init__(self, alias: str) -> None:
        self.alias = alias
        self.name = f"django:{alias}"

    def enqueue(self, messages: Iterable[NewMessage], *, now: float) -> list[int]:
        connection = connections[self.alias]
        connection.ensure_connection()
        raw = connection.connection
        if connection.vendor == "sqlite":
            from mailout.queue.storage._sqlitebound import BoundSQLite

            try:
                return BoundSQLite(raw, self.name, migrate=_migrate()).enqueue(messages, now=now)
            except StorageError as exc:
                raise _locked_hint(exc, connection) from exc.__cause__
        from mailout.queue.storage._pgbound import BoundStorage
        from mailout.queue.storage._pgconn import PgURL, import_driver

        psycopg, _ = import_driver(setting=f"DATABASES[{self.alias!r}]")
        if not isinstance(raw, psycopg.Connection):
            raise ImproperlyConfigured(
                f"EMAIL_QUEUE_URL {self.name!r}: Django connects with psycopg2; the queue in "
                'Django\'s database needs psycopg 3 (pip install "mailout[postgres]"; Django '
                "uses it when it is installed)"
            )
        url = PgURL("", self.name, _pg_schema(self.alias, connection))
        return BoundStorage(url, raw, search_path=False, migrate=_migrate()).enqueue(
            messages, now=now
        )


def enqueuer(url: str) -> DjangoEnqueuer:
    """Where ``enqueue`` stores for a ``django`` URL (see mailout.queue.storage.producer)."""
    return DjangoEnqueuer(alias_of(url))


# -- the worker: mailout's own storage on the same database ----------------------------------


def _pg_url(alias: str) -> str:
    """A postgresql:// URL for what Django connects to with ``alias`` (every libpq parameter
    of Django's, the password too, and Django's schema)."""
    connection = connections[alias]
    params = {
        name: value
        for name, value in connection.get_connection_params().items()
        if name not in _NOT_LIBPQ and isinstance(value, str | int) and not isinstance(value, bool)
    }
    user = quote(str(params.pop("user", "") or ""), safe="")
    host = quote(str(params.pop("host", "") or ""), safe="")
    port = params.pop("port", "")
    dbname = quote(str(params.pop("dbname", "") or ""), safe="")
    netloc = (f"{user}@" if user else "") + host + (f":{port}" if port else "")
    params = {k: v for k, v in params.items() if v != ""}
    query = urlencode({**params, "schema": _pg_schema(alias, connection)}, quote_via=quote)
    return f"postgresql://{netloc}/{dbname}?{query}"


def _sqlite_has_queue(path: str) -> bool:
    """Whether the SQLite file holds the queue's tables, read without creating anything:
    mailout's own storage creates a missing queue, which in a Django project would be a
    worker started before ``migrate`` (or on another file than the site's) making tables
    Django's migrations do not know, then waiting on an empty queue."""
    if not os.path.isfile(path):
        return False
    try:
        with contextlib.closing(sqlite3.connect(path)) as db:
            return bool(db.execute(load("sqlite", "queries.sql")["has_schema"]).fetchone()[0])
    except sqlite3.Error:
        return True  # not readable as SQLite: mailout's storage says what is wrong


class DjangoStorage:
    """``open_storage("django[:<alias>]")``: mailout's SQLite or PostgreSQL storage on the
    database of that alias (the ``STORAGES`` entry for ``django``)."""

    @classmethod
    def from_url(cls, url: str, *, setting: str = "EMAIL_QUEUE_URL") -> Storage:
        alias = alias_of(url, setting=setting)
        connection = connections[alias]
        if connection.vendor == "sqlite":
            from mailout.queue.storage.sqlite import SQLiteStorage

            if connection.is_in_memory_db():
                raise ImproperlyConfigured(
                    f"{setting}: {url!r}: DATABASES[{alias!r}] is an in-memory SQLite "
                    "database, which no worker can open; give it a file NAME"
                )
            path = str(connection.settings_dict["NAME"])
            if not _sqlite_has_queue(path):
                raise StorageError(f"queue database {path}: no queue tables: {_migrate()}")
            return SQLiteStorage(path)
        from mailout.queue.storage.postgres import PostgresStorage

        try:
            return PostgresStorage(_pg_url(alias), setting=setting)
        except SchemaVersionError as exc:
            raise SchemaVersionError(f"{exc} (in a Django project: {_migrate()})") from None


def migrate(url: str, out: TextIO) -> None:
    """``mailout queue migrate`` for a ``django`` queue: Django's ``migrate`` of the app, on
    that database (so Django records it, and ``manage.py migrate`` agrees)."""
    from django.core.management import call_command  # type: ignore[import-untyped]

    alias = alias_of(url)
    call_command("migrate", "mailout", database=alias, stdout=out, verbosity=1)
