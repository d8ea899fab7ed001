"""The Django app itself: its label, Django's test runner with it installed, the error without
Django, and mailout reading the project's settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.apps import apps

from mailout import conf
from mailout.django import EmailBackend
from mailout.django.conf import DjangoSettings
from tests.django.helpers import HAS_MAILERS

ROOT = Path(__file__).resolve().parent.parent.parent
MANAGE = ROOT / "tests" / "django" / "manage.py"


def test_the_app_is_installed_with_its_label() -> None:
    config = apps.get_app_config("mailout")
    assert (config.name, config.verbose_name) == ("mailout.django", "mailout")


def test_a_backend_makes_mailout_read_djangos_settings() -> None:
    """A project may name the backend without installing the app."""
    conf.configure(None)
    EmailBackend(host="127.0.0.1", port=9)
    assert isinstance(conf._source, DjangoSettings)
    assert conf.get("DEFAULT_FROM_EMAIL") == "Example Shop <shop@example.com>"


def test_an_explicit_configuration_is_kept() -> None:
    mine = {"DEFAULT_FROM_EMAIL": "mine@example.com"}
    conf.configure(mine)
    EmailBackend(host="127.0.0.1", port=9)
    assert conf._source is mine


RUNNER_SETTINGS = ["settings_email", *(["settings_mailers"] if HAS_MAILERS else [])]


@pytest.mark.parametrize("settings", RUNNER_SETTINGS)
def test_djangos_test_runner_and_outbox_work_as_always(settings: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMAIL_")}
    done = subprocess.run(
        [sys.executable, str(MANAGE), "test", "tests.django.runner_tests", "-v", "2"],
        capture_output=True,
        text=True,
        env={**env, "DJANGO_SETTINGS_MODULE": f"tests.django.{settings}"},
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "Ran 4 tests" in done.stderr
    assert done.stderr.rstrip().endswith("OK"), done.stderr


def test_without_django_the_error_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['django'] = None\n"  # as if Django were not installed
        "try:\n    import mailout.django\nexcept ImportError as exc:\n    print(exc)\n"
        "import mailout, mailout.backends.smtp, mailout.wire\n"
        "print('core ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        'mailout.django needs Django: pip install "mailout[django]"',
        "core ok",
    ]
