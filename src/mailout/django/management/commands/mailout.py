"""``manage.py mailout …``: mailout's whole command line, with the project's settings.

Every command of ``mailout`` (src/mailout/cli.py) is here with the same options: ``send``,
``config``, ``serve``, ``demo``, and whatever the command line gains later (``queue …``), since
this delegates to its parser. ``call_command("mailout", "config")`` works too, with the
command's words as arguments (``call_command("mailout", "send", "--to", "ana@example.com",
...)``); its output goes to ``stdout=`` when given.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence
from typing import Any, Final

from django.core.management.base import (  # type: ignore[import-untyped]
    BaseCommand,
    CommandError,
)

from mailout import cli
from mailout.django.conf import use_django_settings

EPILOG: Final = """\
settings come from this Django project's settings (DJANGO_SETTINGS_MODULE or --settings):
MAILERS or EMAIL_BACKEND and the EMAIL_* settings, DEFAULT_FROM_EMAIL, SERVER_EMAIL, ...
"""
# Options of manage.py itself that ManagementUtility has applied before any command runs.
_DJANGO_OPTIONS: Final = ("--settings", "--pythonpath")


def _without_django_options(argv: Sequence[str]) -> list[str]:
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in _DJANGO_OPTIONS:
            skip = True  # its value follows
        elif not arg.startswith(tuple(f"{name}=" for name in _DJANGO_OPTIONS)):
            out.append(arg)
    return out


class Command(BaseCommand):  # type: ignore[misc]
    help = "mailout's command line with this project's settings: send, config, serve, demo, ..."
    # The command line decides what each of its commands needs (serve needs no database).
    requires_system_checks: Final[list[str]] = []

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> Any:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.add_argument(
            "args", nargs=argparse.REMAINDER, help="a mailout command and its options"
        )
        return parser

    def print_help(self, prog_name: str, subcommand: str) -> None:
        cli.build_parser(prog=_prog(prog_name, subcommand), epilog=EPILOG).print_help()

    def run_from_argv(self, argv: list[str]) -> None:
        """``manage.py mailout …``: the words after ``mailout`` go to mailout's parser whole."""
        self._called_from_command_line = True
        try:
            status = _run(_without_django_options(argv[2:]), _prog(argv[0], argv[1]))
        finally:
            _close_database_connections()
        if status:
            sys.exit(status)

    def handle(self, *args: Any, **options: Any) -> None:
        """``call_command("mailout", ...)``: run it, raising CommandError on a failure status."""
        words = [str(word) for word in options.get("args") or args]
        out = getattr(self.stdout, "_out", sys.stdout)
        with contextlib.redirect_stdout(out):
            status = _run(words, "mailout")
        if status:
            raise CommandError(
                f"mailout {' '.join(words[:1])}: exit status {status}", returncode=status
            )


def _prog(prog_name: str, subcommand: str) -> str:
    return f"{os.path.basename(prog_name)} {subcommand}"


def _run(argv: Sequence[str], prog: str) -> int:
    use_django_settings()
    return cli.main(argv, prog=prog, epilog=EPILOG)


def _close_database_connections() -> None:
    # As BaseCommand.run_from_argv does: a command that used the database leaves no connection.
    from django.core.exceptions import ImproperlyConfigured  # type: ignore[import-untyped]
    from django.db import connections  # type: ignore[import-untyped]

    with contextlib.suppress(ImproperlyConfigured):
        connections.close_all()
