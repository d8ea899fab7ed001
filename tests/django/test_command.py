"""``manage.py mailout …``: mailout's command line with the project's settings, from a shell
(a real manage.py in a subprocess) and from code (call_command)."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from mailout import cli
from mailout.django import EmailBackend
from tests.conftest import SMTPServer, free_port
from tests.django.helpers import mail_settings

ROOT = Path(__file__).resolve().parent.parent.parent
MANAGE = ROOT / "tests" / "django" / "manage.py"


def manage(*args: str, settings: str = "settings_email", **kwargs: object) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMAIL_")}
    env["DJANGO_SETTINGS_MODULE"] = f"tests.django.{settings}"
    done = subprocess.run(
        [sys.executable, str(MANAGE), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
        **kwargs,  # type: ignore[call-overload]
    )
    assert done.returncode == 0, done.stderr
    return str(done.stdout)


def test_config_shows_the_projects_settings() -> None:
    out = manage("mailout", "config")
    # One column per name, as wide as the longest setting name (the queue's are long).
    values = dict(line.split(None, 1) for line in out.splitlines() if line.strip())
    assert values["EMAIL_BACKEND"] == "'mailout.django.EmailBackend'"
    assert values["EMAIL_POOL_SIZE"] == "2"  # mailout's own setting, from the settings module
    assert values["DEFAULT_FROM_EMAIL"] == "'Example Shop <shop@example.com>'"
    assert values["EMAIL_TIMEOUT"] == "30.0"  # Django's None: mailout's default


def test_settings_option_of_manage_py() -> None:
    out = manage("mailout", "config", "--settings=tests.django.settings_mailers")
    assert "'bulk': {'BACKEND': 'mailout.django.EmailBackend'" in out


def test_every_command_of_the_cli_is_a_subcommand() -> None:
    """The command delegates to mailout's parser: whatever it gains (queue ...) appears."""
    out = manage("help", "mailout")
    assert out.startswith("usage: manage.py mailout")
    commands = cli.build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert set(commands) >= {"send", "config", "serve", "demo"}
    for name in commands:
        assert f"    {name} " in out, name
    assert "this Django project's settings" in out
    assert manage("mailout", "--version").startswith("mailout ")


def test_serve_runs_the_catcher(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMAIL_")}
    env["DJANGO_SETTINGS_MODULE"] = "tests.django.settings_email"
    command = [sys.executable, str(MANAGE), "mailout", "serve", "--smtp", "127.0.0.1:0"]
    command += ["--http", "off", "--quiet"]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT
    ) as server:
        assert server.stdout is not None
        try:
            line = server.stdout.readline()
            assert line.startswith("SMTP listening on 127.0.0.1:"), server.stderr.read()  # type: ignore[union-attr]
            port = int(line.rsplit(":", 1)[1])
            from django.core.mail import EmailMessage

            message = EmailMessage("Caught", "Body.\n", None, ["ana@example.com"])
            assert EmailBackend(host="127.0.0.1", port=port).send_messages([message]) == 1
            assert "ana@example.com" in server.stdout.readline()
        finally:
            server.send_signal(signal.SIGTERM)
            assert server.wait(30) == 0


def test_call_command_send(shop_mail: SMTPServer) -> None:
    call_command(
        "mailout", "send", "--to", "ana@example.com", "--subject", "From a command", "--body", "B"
    )
    [received] = shop_mail.received
    assert received.rcpt_tos == ["ana@example.com"]
    assert received.message["Subject"] == "From a command"
    assert received.message["From"] == "Example Shop <shop@example.com>"


def test_call_command_output_and_failure() -> None:
    out = io.StringIO()
    call_command("mailout", "config", stdout=out)
    assert "DEFAULT_FROM_EMAIL" in out.getvalue()
    with (
        mail_settings("settings", "127.0.0.1", free_port()),
        pytest.raises(CommandError, match="mailout send: exit status 2") as raised,
    ):
        call_command("mailout", "send", "--to", "a@example.com", "--subject", "S", "--body", "B")
    assert raised.value.returncode == 2
