"""Judge mailout as a drop-in ``django.core.mail``: run Django 6.1.3's own tests/mail against it.

    python scripts/django_conformance.py            # prepare (once, cached), run, compare
    python scripts/django_conformance.py --prepare  # only fetch Django and build the venv
    python scripts/django_conformance.py --sdist /path/to/django-6.1.3.tar.gz -v

Django's source distribution comes from PyPI (``pip download``) into ~/.cache/mailout/ (or
$MAILOUT_CACHE), or from ``--sdist``; nothing of Django is copied into this repository. A venv
there (Python >= 3.12: Django 6.1 needs it) holds Django 6.1.3 and aiosmtpd; mailout runs from
this checkout's src/. scripts/django_conformance_shim.py aliases ``django.core.mail`` to mailout
and runs Django's ``tests/runtests.py mail``.

It prints passed / failed / errors, then compares the tests that did not pass with
tests/django_divergences.txt (each: a test id and why mailout differs). The exit status is 1
when a test outside that list does not pass, or when a listed test passes (the list is stale).
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections import Counter
from pathlib import Path

DJANGO_VERSION = "6.1.3"
NO_PYTHON = 3  # exit status when no Python >= 3.12 is found
ROOT = Path(__file__).resolve().parent.parent
SHIM = ROOT / "scripts" / "django_conformance_shim.py"
DIVERGENCES = ROOT / "tests" / "django_divergences.txt"
# What the venv holds besides Django: aiosmtpd, which Django's SMTP backend tests need
# (they skip without it, and a skipped test is not a passed one).
VENV_PACKAGES = ("asgiref>=3.9", "sqlparse>=0.5", "aiosmtpd>=1.4")
# Skips that Django's tests make themselves, whatever backs django.core.mail; any other skip is
# a test that did not run, and fails the judgement like a failure.
DJANGO_OWN_SKIPS = frozenset({"skipped: Dummy backend discards sent messages"})


def cache_dir() -> Path:
    return Path(os.environ.get("MAILOUT_CACHE") or Path.home() / ".cache" / "mailout")


def log(message: str) -> None:
    print(f"django_conformance: {message}", file=sys.stderr, flush=True)


def find_python() -> str:
    """A Python >= 3.12: $MAILOUT_CONFORMANCE_PYTHON, pyenv's versions, or one on PATH."""
    pyenv_root = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    candidates = [os.environ.get("MAILOUT_CONFORMANCE_PYTHON", "")]
    for minor in (14, 13, 12):  # the newest first: 3.12.1 lacks email.errors.HeaderWriteError
        candidates += sorted(glob.glob(f"{pyenv_root}/versions/3.{minor}.*/bin/python3"))
        candidates += [f"/usr/bin/python3.{minor}", f"/usr/local/bin/python3.{minor}"]
    probe = "import sys, venv; sys.exit(sys.version_info < (3, 12))"
    for candidate in filter(None, candidates):
        runs = os.access(candidate, os.X_OK)
        if runs and subprocess.run([candidate, "-c", probe], capture_output=True).returncode == 0:
            return candidate
    log(
        "no Python >= 3.12 found (Django 6.1 needs it); install one (e.g. pyenv install 3.12) "
        "or set MAILOUT_CONFORMANCE_PYTHON=/path/to/python3.12"
    )
    sys.exit(NO_PYTHON)


def fetch_sdist(given: str | None, python: Path) -> Path:
    """Django's sdist: ``given``, or the cached copy, or one downloaded with the venv's pip
    (its Python >= 3.12: pip on an older one finds no Django 6.1)."""
    if given:
        return Path(given).resolve()
    name = f"django-{DJANGO_VERSION}.tar.gz"
    cached = cache_dir() / name
    if cached.exists():
        return cached
    log(f"downloading Django {DJANGO_VERSION}'s source distribution from PyPI")
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [str(python), "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
             "--no-deps", "--no-binary", ":all:", "--dest", tmp, f"django=={DJANGO_VERSION}"],
            check=True,
        )  # fmt: skip
        (found,) = Path(tmp).glob("[Dd]jango-*.tar.gz")
        shutil.move(found, cached)
    return cached


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def unpack(sdist: Path) -> Path:
    """The sdist unpacked under the cache (once per distinct file)."""
    target = cache_dir() / f"django-{DJANGO_VERSION}-{digest(sdist)}"
    if not (target / "tests" / "runtests.py").exists():
        log(f"unpacking {sdist}")
        tmp = Path(tempfile.mkdtemp(dir=cache_dir()))
        with tarfile.open(sdist) as archive:
            archive.extractall(tmp, filter="data")
        (top,) = tmp.iterdir()
        shutil.rmtree(target, ignore_errors=True)
        top.rename(target)
        shutil.rmtree(tmp)
    return target


def venv() -> Path:
    """A venv (Python >= 3.12) holding aiosmtpd and Django's other test needs."""
    where = cache_dir() / "conformance-venv"
    python = where / "bin" / "python"
    stamp = where / "mailout-packages"
    wanted = " ".join(VENV_PACKAGES)
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    base = find_python()
    log(f"building {where} with {base}")
    shutil.rmtree(where, ignore_errors=True)
    cache_dir().mkdir(parents=True, exist_ok=True)
    subprocess.run([base, "-m", "venv", str(where)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, *VENV_PACKAGES, "setuptools>=75.8.1"], check=True)
    stamp.write_text(wanted)
    return python


def install_django(python: Path, sdist: Path) -> None:
    """Django from ``sdist`` into the venv, unless that very file is installed already."""
    stamp = python.parent.parent / "mailout-django"
    if stamp.exists() and stamp.read_text() == digest(sdist):
        return
    log(f"installing {sdist.name} into the venv")
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "--no-build-isolation", "--no-deps", str(sdist)], check=True)
    stamp.write_text(digest(sdist))


def run(python: Path, django_dir: Path, extra: list[str]) -> dict[str, dict[str, str]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "PYTHONDONTWRITEBYTECODE": "1"}
    for name in list(env):
        if name.startswith("EMAIL_") or name in ("MAILERS", "DJANGO_SETTINGS_MODULE"):
            del env[name]  # the tests configure Django; nothing from this shell may leak in
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp) / "results.json"
        command = [str(python), str(SHIM), str(django_dir / "tests"), str(results), "mail",
                   "--parallel=1", "--noinput", *extra]  # fmt: skip
        if os.geteuid() == 0 and shutil.which("setpriv"):
            # As root every directory is writable, and Django's test of an unwritable
            # file_path could not fail; without the override capabilities root meets modes.
            command = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--",
                       *command]  # fmt: skip
        completed = subprocess.run(command, env=env, cwd=tmp)
        if not results.exists():
            raise SystemExit(
                f"django_conformance: the test run died (status {completed.returncode})"
            )
        data: dict[str, dict[str, str]] = json.loads(results.read_text())
    return data


def load_divergences(path: Path) -> dict[str, str]:
    """``test.id  reason`` per line; blank lines and lines starting with # are comments."""
    entries: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        test_id, _, reason = line.strip().partition(" ")
        if not reason.strip():
            raise SystemExit(f"{path}:{number}: {test_id} needs a reason")
        if test_id in entries:
            raise SystemExit(f"{path}:{number}: {test_id} listed twice")
        entries[test_id] = reason.strip()
    return entries


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sdist", help=f"Django {DJANGO_VERSION}'s .tar.gz (default: cached, or PyPI)"
    )
    parser.add_argument("--prepare", action="store_true", help="fetch and build only")
    parser.add_argument("-v", "--verbose", action="store_true", help="list every divergence")
    parser.add_argument("runtests_args", nargs="*", help="passed on to runtests.py")
    args = parser.parse_args()

    python = venv()
    sdist = fetch_sdist(args.sdist, python)
    django_dir = unpack(sdist)
    install_django(python, sdist)
    if args.prepare:
        log(f"ready: {python}, {django_dir}")
        return 0
    results = run(python, django_dir, [] if args.verbose else ["-v", "0"])
    outcomes, details = results["outcomes"], results["details"]
    expected = load_divergences(DIVERGENCES)

    counts = Counter(outcomes.values())
    total = len(outcomes)
    own_skips = {
        t for t, o in outcomes.items() if o == "skipped" and details.get(t) in DJANGO_OWN_SKIPS
    }
    not_passing = {t: o for t, o in outcomes.items() if o != "passed" and t not in own_skips}
    unexpected = sorted(t for t in not_passing if t not in expected)
    stale = sorted(t for t in expected if outcomes.get(t) == "passed")
    missing = sorted(t for t in expected if t not in outcomes)
    diverging = sorted(t for t in not_passing if t in expected)

    print(f"Django {DJANGO_VERSION} tests/mail against mailout: {total} tests")
    print(
        f"{counts['passed']} passed, {counts['failed']} failed, {counts['error']} errors, "
        f"{counts['skipped']} skipped ({len(own_skips)} by Django's own test); "
        f"{len(diverging)} of the non-passing are documented divergences "
        f"({DIVERGENCES.relative_to(ROOT)}), {len(unexpected)} are not"
    )
    if args.verbose:
        for test_id in diverging:
            print(f"  divergent: {test_id}: {expected[test_id]}")
    for test_id in unexpected:
        print(f"UNEXPECTED {not_passing[test_id]}: {test_id}: {details.get(test_id, '')}")
    for test_id in stale:
        print(f"STALE (listed, but passes now): {test_id}")
    for test_id in missing:
        print(f"STALE (listed, but no such test ran): {test_id}")
    if unexpected or stale or missing:
        print(f"{counts['passed']} passed, {len(unexpected)} failed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
