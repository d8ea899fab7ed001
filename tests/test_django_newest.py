"""tests/django (mailout.django's test project) under the newest Django as well.

The rest of the suite runs tests/django under the main venv's Django (5.2 LTS, Python 3.11);
scripts/django_newest.py runs it again under Django 6.1.3 with a Python >= 3.12, in a venv under
~/.cache/mailout/ that .ci/run prepares (the first run here builds it otherwise).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "django_newest.py"
NO_PYTHON = 3  # the script's exit status when no Python >= 3.12 exists here


@pytest.mark.timeout(900)
def test_the_django_project_tests_pass_under_the_newest_django() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMAIL_")}
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--", "-q"],
        capture_output=True,
        text=True,
        env=env,
        timeout=880,
    )
    report = done.stdout[-6000:] + done.stderr[-3000:]
    if done.returncode == NO_PYTHON and "no Python >= 3.12" in done.stderr:
        pytest.skip(f"no Python >= 3.12 for the newest Django: {done.stderr.strip()}")
    assert done.returncode == 0, report
    summary = done.stdout.strip().splitlines()[-1]
    assert re.search(r"\d+ passed", summary), report
    assert not re.search(r"failed|error|skipped", summary), report
