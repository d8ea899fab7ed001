"""Run tests/django (mailout.django's test project) under the newest Django, in a venv of its own.

    python scripts/django_newest.py --prepare   # build the venv once (cached), then exit
    python scripts/django_newest.py             # run tests/django there
    python scripts/django_newest.py -- -k redirect -x   # with pytest's arguments

The main venv holds Django 5.2 LTS (Python 3.11); the newest Django (6.1.3) needs Python >= 3.12.
Like scripts/django_conformance.py (whose Python finder and Django source distribution it
reuses: nothing of Django is copied into this repository), it builds a venv under
~/.cache/mailout/ (or $MAILOUT_CACHE) with a Python >= 3.12, Django 6.1.3 and the test tools the
suite needs (their versions from pyproject.toml's dev extra); mailout and the tests run from this
checkout (PYTHONPATH), and mailout's pytest plugin is loaded with ``-p mailout.testing``.
Exit status: pytest's; 3 when no Python >= 3.12 exists here.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import django_conformance as conformance  # noqa: E402

# What tests/django needs besides Django: pytest and its plugins the configuration names, and
# what tests/conftest.py imports. Versions come from pyproject.toml's dev extra.
TOOLS = ("pytest", "pytest-timeout", "hypothesis", "trustme", "aiosmtpd", "psycopg", "psycopg-pool")


def log(message: str) -> None:
    print(f"django_newest: {message}", file=sys.stderr, flush=True)


def requirements() -> list[str]:
    dev = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    wanted = {}
    for spec in dev["dev"]:
        name = re.split(r"[<>=!~ \[;]", spec, maxsplit=1)[0].lower()
        if name in TOOLS:
            wanted[name] = spec
    missing = set(TOOLS) - set(wanted)
    if missing:
        raise SystemExit(f"django_newest: pyproject.toml's dev extra lacks {sorted(missing)}")
    return [wanted[name] for name in TOOLS]


@contextlib.contextmanager
def locked() -> Iterator[None]:
    """One builder at a time: worktrees share the cache and may run their suites at once."""
    conformance.cache_dir().mkdir(parents=True, exist_ok=True)
    with open(conformance.cache_dir() / "django-newest.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def venv() -> Path:
    """The venv's python: built (or rebuilt, when what it should hold changed) as needed."""
    with locked():
        sdist = conformance.fetch_sdist(None, Path(conformance.find_python()))
        wanted = " ".join([*requirements(), sdist.name, conformance.digest(sdist)])
        # One venv per set of packages: checkouts that want different ones (worktrees of
        # different commits) share the cache without rebuilding it under each other.
        key = hashlib.sha256(wanted.encode()).hexdigest()[:12]
        where = conformance.cache_dir() / f"django-newest-venv-{key}"
        python = where / "bin" / "python"
        stamp = where / "mailout-packages"
        if python.exists() and stamp.exists() and stamp.read_text() == wanted:
            return python
        base = conformance.find_python()
        log(f"building {where} with {base}")
        shutil.rmtree(where, ignore_errors=True)
        subprocess.run([base, "-m", "venv", str(where)], check=True)
        pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run(
            [*pip, *conformance.VENV_PACKAGES, *requirements(), "setuptools>=75.8.1"], check=True
        )
        subprocess.run([*pip, "--no-build-isolation", "--no-deps", str(sdist)], check=True)
        stamp.write_text(wanted)
        return python


def run(python: Path, pytest_args: list[str]) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMAIL_")}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    command = [str(python), "-m", "pytest", "-p", "mailout.testing", "-p", "no:cacheprovider"]
    command += ["tests/django", *pytest_args]
    return subprocess.run(command, cwd=ROOT, env=env).returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prepare", action="store_true", help="build the venv only")
    parser.add_argument("pytest_args", nargs="*", help="passed on to pytest (after --)")
    args = parser.parse_args()
    python = venv()
    if args.prepare:
        version = subprocess.run(
            [str(python), "-c", "import django, sys; print(django.__version__, sys.version)"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        log(f"ready: {python} (Django {version})")
        return 0
    return run(python, args.pytest_args)


if __name__ == "__main__":
    sys.exit(main())
