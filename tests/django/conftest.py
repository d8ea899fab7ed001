"""The test shop (tests/django/settings.py) set up for this process, and its mail settings.

Collected with the rest of the suite, this runs under the Django of the main venv (5.2 LTS);
tests/test_django_newest.py runs the same directory under the newest Django in a venv of its own.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import django
import pytest

os.environ["DJANGO_SETTINGS_MODULE"] = "tests.django.settings"
django.setup()

from mailout import wire  # noqa: E402
from mailout.django.conf import use_django_settings  # noqa: E402
from tests.conftest import SMTPServer  # noqa: E402
from tests.django.helpers import STYLES, mail_settings, quiet_overrides  # noqa: E402
from tests.django.queue_db import VENDORS, database  # noqa: E402


@pytest.fixture(params=STYLES)
def style(request: pytest.FixtureRequest) -> str:
    """How the project configures mail: "settings" (EMAIL_*), and "mailers" on Django 6.1."""
    return str(request.param)


@pytest.fixture
def shop_mail(style: str, smtp_server: SMTPServer) -> Iterator[SMTPServer]:
    """The project's mail goes through mailout.django's backend to the aiosmtpd server."""
    with mail_settings(style, smtp_server.host, smtp_server.port):
        yield smtp_server


@pytest.fixture(autouse=True)
def _a_django_project() -> None:
    """The state of a project whose app is ready (tests/conftest.py resets mailout's settings
    before each test): mailout reads Django's settings. Fresh fast-path counters."""
    use_django_settings()
    wire.stats.reset()


@pytest.fixture(params=VENDORS)
def queue_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of the test's own (SQLite file, PostgreSQL schema) as a DATABASES alias,
    migrated, and the project's queue in it: ``EMAIL_QUEUE_URL = "django:<alias>"``."""
    from django.core.management import call_command

    with database(request.param, tmp_path) as alias:
        call_command("migrate", "mailout", database=alias, verbosity=0)
        with quiet_overrides(EMAIL_QUEUE_URL=f"django:{alias}"):
            yield alias
