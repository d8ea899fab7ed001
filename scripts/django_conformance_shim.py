"""Run Django's ``tests/runtests.py mail`` with ``django.core.mail`` replaced by mailout.

Started by scripts/django_conformance.py inside its venv (Python >= 3.12, Django 6.1.3, and
mailout's src/ first on PYTHONPATH): ``python django_conformance_shim.py TESTS_DIR RESULTS.json
[runtests arguments]``. Nothing here changes what a test checks; it only puts mailout where
Django's mail package was and records each test's outcome:

* ``django.core.mail`` and its modules ``message``, ``utils`` and ``backends.*`` become mailout's
  modules of the same names, before Django's test machinery imports them;
* ``django.core.mail.deprecation`` stays Django's own: the tests import the texts of Django's
  deprecation warnings from it (mailout emits none of them);
* mailout reads its settings from ``django.conf.settings`` at call time, as Django's mail
  package does. Django warns when code outside Django reads a deprecated ``EMAIL_*`` setting;
  Django's own mail package reads them silently, so mailout's reads (in that role) do too.
"""

from __future__ import annotations

import json
import os
import runpy
import sys
import unittest
import warnings
from typing import Any

MODULES = ("message", "utils", "backends", *(f"backends.{n}" for n in (
    "base", "console", "dummy", "filebased", "locmem", "smtp")))  # fmt: skip


class DjangoSettings:
    """mailout's settings source: Django's settings, read as Django's own mail code reads them."""

    def __getattr__(self, name: str) -> Any:
        from django.conf import settings
        from django.utils.deprecation import RemovedInDjango2028Warning

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RemovedInDjango2028Warning)
            return getattr(settings, name)


def alias() -> None:
    import importlib

    import django.core
    import django.core.mail.deprecation

    import mailout

    for name in [n for n in sys.modules if n.startswith("django.core.mail.")]:
        if name != "django.core.mail.deprecation":
            del sys.modules[name]
    sys.modules["django.core.mail"] = mailout
    django.core.mail = mailout  # type: ignore[attr-defined]
    for name in MODULES:
        sys.modules[f"django.core.mail.{name}"] = importlib.import_module(f"mailout.{name}")
    mailout.configure(DjangoSettings())


class Recorder(unittest.TextTestResult):
    """unittest's text result, also keeping each test's outcome for the harness."""

    outcomes: dict[str, str] = {}
    details: dict[str, str] = {}

    def _record(self, test: Any, outcome: str, err: Any = None) -> None:
        test_id = getattr(test, "test_case", test).id()  # a subtest counts for its test
        # A test is as bad as its worst subtest: error > failure > skip > success.
        order = ["passed", "skipped", "expected failure", "failed", "error"]
        previous = self.outcomes.get(test_id, "passed")
        self.outcomes[test_id] = max(previous, outcome, key=order.index)
        if err is not None and test_id not in self.details:
            self.details[test_id] = self._exc_info_to_string(err, test).strip().splitlines()[-1]

    def addSuccess(self, test: Any) -> None:
        super().addSuccess(test)
        self._record(test, "passed")

    def addFailure(self, test: Any, err: Any) -> None:
        super().addFailure(test, err)
        self._record(test, "failed", err)

    def addError(self, test: Any, err: Any) -> None:
        super().addError(test, err)
        # setUpClass/module errors arrive as a _ErrorHolder whose id() names the class.
        self._record(test, "error", err)

    def addSkip(self, test: Any, reason: str) -> None:
        super().addSkip(test, reason)
        self._record(test, "skipped")
        self.details.setdefault(getattr(test, "test_case", test).id(), f"skipped: {reason}")

    def addExpectedFailure(self, test: Any, err: Any) -> None:
        super().addExpectedFailure(test, err)
        self._record(test, "expected failure")

    def addUnexpectedSuccess(self, test: Any) -> None:
        super().addUnexpectedSuccess(test)
        self._record(test, "failed")
        self.details.setdefault(test.id(), "unexpected success")

    def addSubTest(self, test: Any, subtest: Any, err: Any) -> None:
        super().addSubTest(test, subtest, err)
        if err is not None:
            failed = issubclass(err[0], test.failureException)
            self._record(test, "failed" if failed else "error", err)


def main() -> None:
    tests_dir, results_path, *runtests_args = sys.argv[1:]
    alias()
    from django.test.runner import DiscoverRunner

    DiscoverRunner.get_resultclass = lambda self: Recorder  # type: ignore[method-assign]
    if os.environ.get("MAILOUT_CONFORMANCE_WITHOUT_WARNING_CHECKS"):
        # Diagnosis only (never in the judgement): what would fail besides the missing
        # deprecation warnings? assertWarns*() then check nothing.
        import contextlib

        from django.test import SimpleTestCase

        def no_check(self: Any, *args: Any, **kwargs: Any) -> Any:
            return contextlib.nullcontext()

        SimpleTestCase.assertWarns = no_check  # type: ignore[method-assign]
        SimpleTestCase.assertWarnsMessage = no_check  # type: ignore[method-assign]
    sys.path.insert(0, tests_dir)
    sys.argv = [os.path.join(tests_dir, "runtests.py"), *runtests_args]
    status: object = 0
    try:
        runpy.run_path(sys.argv[0], run_name="__main__")
    except SystemExit as exit_:
        status = exit_.code
    with open(results_path, "w", encoding="utf-8") as out:
        json.dump({"outcomes": Recorder.outcomes, "details": Recorder.details}, out, indent=1)
    sys.exit(0 if Recorder.outcomes else (status or 1))


if __name__ == "__main__":
    main()
