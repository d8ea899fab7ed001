"""``mailout queue …``: status, list, show, the postsuper-like operations, purge, healthcheck."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import mailout
from mailout.cli import main
from mailout.queue import Queue
from mailout.queue.models import WorkerInfo
from tests.queue.conftest import Clock
from tests.queue.helpers import drain, states

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'q.db'}"
    mailout.configure(
        {"EMAIL_QUEUE_URL": url, "EMAIL_QUEUE_MAILER": "mailout.backends.locmem.EmailBackend"}
    )
    return url


def fill(url: str, count: int = 3, clock: Clock | None = None) -> list[int]:
    messages = [
        mailout.EmailMessage(f"Subject {n}", "Body", "a@example.com", [f"u{n}@example.com"])
        for n in range(count)
    ]
    with Queue(url, clock=clock or time.time) as queue:
        return [i for i in queue.enqueue(messages) if i is not None]


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["queue", *args])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_status(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    fill(url, 3)
    code, out = cli(capsys, "status", "--json")
    data = json.loads(out)
    assert code == 0
    assert {k: data[k] for k in ("queued", "deferred", "sending", "sent", "failed")} == {
        "queued": 3,
        "deferred": 0,
        "sending": 0,
        "sent": 0,
        "failed": 0,
    }
    assert all(
        isinstance(data[k], int) for k in ("queued", "deferred", "sending", "sent", "failed")
    )
    assert data["store"].endswith("q.db")
    assert data["workers"] == []
    assert data["oldest_due"]
    code, out = cli(capsys, "status")
    assert code == 0
    assert "queued             3" in out
    assert "no worker is running" in out


def test_list_and_show(url: str, capsys: pytest.CaptureFixture[str], clock: Clock) -> None:
    ids = fill(url, 3)
    code, out = cli(capsys, "list", "--state", "queued", "--limit", "2")
    assert code == 0
    assert len(out.splitlines()) == 2
    assert "'Subject 2'" in out
    code, out = cli(capsys, "list", "--json")
    assert [m["id"] for m in json.loads(out)] == ids[::-1]
    with Queue(url) as queue:
        queue.clock = clock
        drain(queue.storage, clock)
    code, out = cli(capsys, "show", str(ids[0]))
    assert code == 0
    assert "state        sent" in out
    assert " #1 sent      u0@example.com 250 accepted by " in out
    assert "Subject: Subject 0" in out
    code, out = cli(capsys, "show", str(ids[0]), "--json")
    shown = json.loads(out)
    assert shown["state"] == "sent"
    assert shown["events"][0]["code"] == 250
    code, out = cli(capsys, "show", "999")
    assert code == 2
    assert "no message 999" in out


def test_show_raw_prints_the_stored_bytes(url: str) -> None:
    [id_] = fill(url, 1)
    with Queue(url) as queue:
        data = queue.show(id_).data
    result = subprocess.run(
        [sys.executable, "-m", "mailout", "queue", "show", str(id_), "--raw", "--url", url],
        capture_output=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0
    assert result.stdout == data


def test_hold_release_expire_retry(
    url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = fill(url, 4)
    assert cli(capsys, "hold", str(ids[0]), str(ids[1])) == (0, "held 2 message(s)\n")
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{ids[1]}\n"))
    assert cli(capsys, "release", "-") == (0, "released 1 message(s)\n")
    assert cli(capsys, "expire", str(ids[2])) == (0, "expired 1 message(s)\n")
    assert cli(capsys, "retry", "--failed") == (0, "retried 1 message(s)\n")
    assert cli(capsys, "hold", "ALL") == (0, "held 3 message(s)\n")
    assert cli(capsys, "release", "ALL") == (0, "released 4 message(s)\n")
    with pytest.raises(SystemExit, match="give message ids"):
        main(["queue", "retry"])
    with Queue(url) as queue:
        assert states(queue) == {"queued": 4}
        assert [e.kind for e in queue.show(ids[2]).events] == [
            "expired",
            "retried",
            "held",
            "released",
        ]


def test_bad_ids(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit, match="'x1' is not a message id"):
        main(["queue", "hold", "x1"])


def test_purge(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    clock = Clock(time.time() - 8 * 86400)
    ids = fill(url, 3, clock)
    with Queue(url) as queue:
        drain(queue.storage, clock)  # sent eight days ago
    code, out = cli(capsys, "purge", "--sent", "--older-than", "7d")
    assert (code, out) == (0, "purged 3 message(s)\n")
    with pytest.raises(SystemExit, match="--sent and/or --failed"):
        main(["queue", "purge", "--older-than", "1d"])
    assert ids


def test_healthcheck(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = cli(capsys, "healthcheck")
    assert (code, out) == (1, "unhealthy: no worker has reported in the last 180 s\n")
    now = time.time()
    with Queue(url) as queue:
        queue.storage.heartbeat(WorkerInfo("w", "host", 1, now, now), lease=60, now=now)
    assert cli(capsys, "healthcheck")[0] == 0
    with Queue(url) as queue:
        queue.enqueue(
            [mailout.EmailMessage("s", "b", "a@example.com", ["b@example.com"])], now=now - 3600
        )
    code, out = cli(capsys, "healthcheck", "--max-wait", "10m", "--json")
    health = json.loads(out)
    assert code == 1
    assert health["ok"] is False
    assert "not drained" in health["reason"]


def test_bad_worker_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["queue", "worker", "--rate", "fast"])
    assert "expected a rate such as '14/s'" in capsys.readouterr().err


def test_config_lists_the_queue_settings(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    assert "EMAIL_QUEUE_URL" in out
    assert "EMAIL_QUEUE_LIFETIME" in out


def test_a_missing_store_directory_is_an_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mailout",
            "queue",
            "status",
            "--url",
            f"sqlite:///{tmp_path}/no/q.db",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith("EMAIL_")},
    )
    assert result.returncode == 2
    assert f"{tmp_path}/no/q.db" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_queue_demo(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mailout", "queue", "demo", "--no-wait"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if not k.startswith("EMAIL_")},
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Enqueued 5 messages" in out
    assert "All 5 deferred." in out
    assert "Every message was retried and delivered." in out
    assert "sent               5" in out
    assert " #1 deferred  ana@example.com  SMTPConnectError" in out
    assert " #2 sent      ana@example.com 250 " in out
    assert "event=batch-deferred" in result.stderr
    assert "event=sent" in result.stderr
