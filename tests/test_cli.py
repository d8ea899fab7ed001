"""The mailout command: send, config, demo, help."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import mailout
from mailout.cli import main
from tests.conftest import SMTPServer


def run(
    *args: str, env: dict[str, str] | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailout", *args],
        capture_output=True,
        text=True,
        input=stdin,
        env={**os.environ, **(env or {})},
        timeout=60,
        check=False,
    )


def test_send_with_everything(tmp_path: Path) -> None:
    mailout.configure({"EMAIL_BACKEND": "mailout.backends.locmem.EmailBackend"})
    html = tmp_path / "body.html"
    html.write_text("<p>hi</p>")
    attachment = tmp_path / "notes.txt"
    attachment.write_text("notes")
    code = main(
        [
            "send", "--to", "a@example.com", "--to", "b@example.com", "--subject", "Hi",
            "--body", "Hello", "--from", "me@example.com", "--cc", "c@example.com",
            "--bcc", "d@example.com", "--reply-to", "r@example.com", "--html", str(html),
            "--attach", str(attachment), "--header", "X-Tag: cli",
        ]
    )  # fmt: skip
    assert code == 0
    [sent] = mailout.outbox
    assert sent.recipients() == ["a@example.com", "b@example.com", "c@example.com", "d@example.com"]
    msg = sent.message()
    assert msg["X-Tag"] == "cli"
    assert msg["Reply-To"] == "r@example.com"
    assert [a.get_filename() for a in msg.iter_attachments()] == ["notes.txt"]


def test_send_reads_body_from_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    mailout.configure({"EMAIL_BACKEND": "mailout.backends.locmem.EmailBackend"})
    monkeypatch.setattr("sys.stdin", io.StringIO("from stdin\n"))
    assert main(["send", "--to", "a@example.com", "--subject", "s"]) == 0
    assert mailout.outbox[0].body == "from stdin\n"


def test_send_over_smtp_in_a_subprocess(smtp_server: SMTPServer) -> None:
    result = run(
        "send", "--to", "a@example.com", "--subject", "Sub", "--body", "B",
        env={"EMAIL_URL": f"smtp://{smtp_server.host}:{smtp_server.port}"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert smtp_server.received[0].message["Subject"] == "Sub"


def test_send_bad_input_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    mailout.configure({"EMAIL_BACKEND": "mailout.backends.locmem.EmailBackend"})
    assert main(["send", "--to", "not an address", "--subject", "s", "--body", "b"]) == 2
    assert "to: Invalid address 'not an address'" in capsys.readouterr().err
    assert mailout.outbox == []


def test_config_masks_password() -> None:
    result = run("config", env={"EMAIL_URL": "smtp://user:topsecret@mail.example.com:587"})
    assert result.returncode == 0
    assert "topsecret" not in result.stdout
    lines = {line.split()[0]: line.split(None, 1)[1] for line in result.stdout.splitlines()}
    assert lines["EMAIL_HOST_PASSWORD"] == "'********'"
    assert lines["EMAIL_HOST"] == "'mail.example.com'"


def test_bad_setting_is_reported_not_a_traceback() -> None:
    result = run("config", env={"EMAIL_PORT": "abc"})
    assert result.returncode == 2
    assert "EMAIL_PORT: expected a port number, got 'abc'" in result.stderr
    assert "Traceback" not in result.stderr


def test_help_lists_commands() -> None:
    result = run("--help")
    assert result.returncode == 0
    for command in ("send", "config", "demo"):
        assert command in result.stdout


def test_demo_sends_through_smtp() -> None:
    result = run("demo", "--no-wait")
    assert result.returncode == 0, result.stderr
    assert "SMTP listening on 127.0.0.1:" in result.stdout
    assert "Sent 1 message through mailout's SMTP backend" in result.stdout
    assert "inbox audit@example.com: 1 message(s)" in result.stdout  # the Bcc recipient
    assert "1 attachment(s)" in result.stdout


@pytest.mark.parametrize("command", ["serve", "demo"])
def test_missing_server_extra_gives_install_advice(command: str) -> None:
    blocked = "import sys; sys.modules['aiosmtpd'] = None; from mailout.cli import main; "
    result = subprocess.run(
        [sys.executable, "-c", blocked + f"sys.exit(main([{command!r}, '--help'][:1]))"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert 'pip install "mailout[server]"' in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("signals", [1, 200])
def test_the_waiting_demo_stops_on_sigterm_even_in_a_burst(signals: int) -> None:
    # The demo serves until Ctrl-C or SIGTERM; a burst of SIGTERMs (timeout, make and a
    # supervisor may each send one) once left it deadlocked in its own signal handler.
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailout", "demo"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("Serving until Ctrl-C"):
                break
        for _ in range(signals):
            proc.send_signal(signal.SIGTERM)
        code = proc.wait(10)  # not stuck
        # One SIGTERM: a clean stop. In a burst, one arriving after the demo gave SIGTERM
        # back to Python's default (while it closes) ends it at once, as it should.
        assert code == 0 if signals == 1 else code in (0, -signal.SIGTERM)
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
