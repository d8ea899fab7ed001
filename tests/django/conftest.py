"""The test shop (tests/django/settings.py) set up for this process, and its mail settings.

Collected with the rest of the suite, this runs under the Django of the main venv (5.2 LTS);
tests/test_django_newest.py runs the same directory under the newest Django in a venv of its own.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import django
import pytest

os.environ["DJANGO_SETTINGS_MODULE"] = "tests.django.settings"
django.setup()

from mailout import wire  # noqa: E402
from mailout.django.conf import use_django_settings  # noqa: E402
from tests.conftest import SMTPServer  # noqa: E402
from tests.django.helpers import STYLES, mail_settings  # noqa: E402


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
