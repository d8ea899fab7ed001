"""`mailout serve` and `mailout demo` as a user runs them: in a subprocess."""

from __future__ import annotations

import os
import signal
import smtplib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mailout.catcher.store import MessageStore
from mailout.cli import main


def start(*args: str) -> tuple[subprocess.Popen[str], dict[str, str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "mailout", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines: dict[str, str] = {}
    assert process.stdout is not None
    wanted = 1 if "off" in args else 2
    while len(lines) < wanted:
        line = process.stdout.readline()
        assert line, process.communicate()
        if line.startswith("SMTP listening on "):
            lines["smtp"] = line.removeprefix("SMTP listening on ").strip()
        elif line.startswith("Web inbox on "):
            lines["http"] = line.removeprefix("Web inbox on ").strip()
    return process, lines


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], dict[str, str], Path]]:
    db = tmp_path / "mail.db"
    process, lines = start(
        "--smtp", "127.0.0.1:0", "--http", "127.0.0.1:0", "--db", str(db), "--quiet"
    )
    yield process, lines, db
    if process.poll() is None:
        process.kill()
        process.communicate()


def test_serve_prints_listeners_stores_and_exits_cleanly_on_sigterm(
    served: tuple[subprocess.Popen[str], dict[str, str], Path],
) -> None:
    process, lines, db = served
    host, port = lines["smtp"].rsplit(":", 1)
    assert host == "127.0.0.1"
    assert int(port) > 0
    assert lines["http"].startswith("http://127.0.0.1:")
    assert lines["http"].endswith("/")
    with smtplib.SMTP(host, int(port)) as client:
        for n in range(3):
            client.sendmail("a@example.com", [f"r{n}@example.com"], b"Subject: kept\r\n\r\nx\r\n")
    assert httpx.get(lines["http"] + "api/messages", timeout=5).json()["total"] == 3
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=15)
    assert process.returncode == 0, err
    assert out.count("'kept'") == 3  # --quiet: one line per message
    with MessageStore(str(db)) as store:
        assert store.list()[0] == 3


def test_serve_sigint_and_print_mode(tmp_path: Path) -> None:
    process, lines = start("--smtp", "127.0.0.1:0", "--http", "off", "--print")
    try:
        host, port = lines["smtp"].rsplit(":", 1)
        with smtplib.SMTP(host, int(port)) as client:
            client.sendmail(
                "a@example.com",
                ["b@example.com"],
                b"Subject: =?utf-8?q?Caf=C3=A9?=\r\n\r\nthe body\r\n",
            )
        time.sleep(0.3)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert "Subject: Café" in out
    assert "the body" in out
    assert "Web inbox" not in out


def test_serve_warns_when_web_not_on_loopback() -> None:
    process, _lines = start("--smtp", "127.0.0.1:0", "--http", "0.0.0.0:0")
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=15)
    assert process.returncode == 0
    assert "warning" in err
    assert "not loopback" in err


def test_serve_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit, match="HOST:PORT"):
        main(["serve", "--smtp", "nowhere:port"])
    with pytest.raises(SystemExit, match="go together"):
        main(["serve", "--tls-cert", "x.pem"])


def test_demo_no_wait_sends_through_the_catcher() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mailout", "demo", "--no-wait"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "SMTP listening on 127.0.0.1:" in out
    assert "Web inbox on http://127.0.0.1:" in out
    assert "Sent 1 message through mailout's SMTP backend" in out
    assert "1 attachment(s)" in out
    assert "inbox audit@example.com: 1 message(s)" in out  # the Bcc recipient
    assert "EMAIL_HOST=127.0.0.1 EMAIL_PORT=" in out
