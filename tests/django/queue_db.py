"""A database of the test's own for the queue in Django's database: a SQLite file in tmp, or a
schema of its own on the machine's PostgreSQL (tests/queue/pg.py), made a ``DATABASES`` alias
of the running project at run time and dropped afterwards.

``settings_queue.py`` is the same project for a subprocess (``manage.py``): it reads the
aliases from ``MAILOUT_TEST_DATABASES`` (JSON), which ``subprocess_env`` sets.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from django.conf import settings
from django.db import connections

VENDORS = ["sqlite", "postgresql"]


def pg_settings(schema: str) -> dict[str, Any]:
    from tests.queue.pg import SERVER

    parts = urlsplit(SERVER)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parts.path.lstrip("/")) or "test",
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
        # The application_name lets the test end this schema's connections, and only those.
        "OPTIONS": {"options": f"-c search_path={schema}", "application_name": schema},
    }


def add_alias(alias: str, config: dict[str, Any]) -> None:
    settings.DATABASES[alias] = config
    filled = connections.configure_settings(
        {"default": settings.DATABASES["default"], alias: config}
    )
    connections.settings[alias] = filled[alias]


def remove_alias(alias: str) -> None:
    with contextlib.suppress(Exception):
        connections[alias].close()
    with contextlib.suppress(AttributeError, KeyError):
        del connections[alias]
    connections.settings.pop(alias, None)
    settings.DATABASES.pop(alias, None)


@contextlib.contextmanager
def database(vendor: str, tmp_path: Path, *, alias: str | None = None) -> Iterator[str]:
    """A new, empty database under ``alias`` (not migrated); by default an alias new for each
    test: Django keeps a connection per alias in every thread that used one (asgiref's thread
    for async code too), which must not outlive the database it was for."""
    alias = alias or f"mailqueue_{uuid.uuid4().hex[:8]}"
    if vendor == "sqlite":
        config: dict[str, Any] = {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(tmp_path / f"{alias}.sqlite3"),
        }
        add_alias(alias, config)
        try:
            yield alias
        finally:
            remove_alias(alias)
        return
    from tests.queue.pg import admin

    schema = f"mailout_dj_{uuid.uuid4().hex[:12]}"
    with admin() as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
        add_alias(alias, pg_settings(schema))
        try:
            yield alias
        finally:
            remove_alias(alias)
            # Connections of Django's in other threads may still be open: end them first.
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = %s",
                [schema],
            )
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def subprocess_env(*aliases: str, **extra: str) -> dict[str, str]:
    """The environment of a ``manage.py`` subprocess that sees ``aliases`` as this process does."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMAIL_")}
    env["DJANGO_SETTINGS_MODULE"] = "tests.django.settings_queue"
    env["MAILOUT_TEST_DATABASES"] = json.dumps({a: settings.DATABASES[a] for a in aliases})
    env.update(extra)
    return env
