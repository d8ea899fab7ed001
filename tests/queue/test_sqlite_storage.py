"""The SQLite store on real files: durability settings, URLs, bad files, query plans, processes."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mailout.exceptions import ImproperlyConfigured, SchemaVersionError, StorageError
from mailout.queue.models import State
from mailout.queue.sql import load
from mailout.queue.storage import open_storage
from mailout.queue.storage.sqlite import SQLiteStorage
from tests.queue.conftest import T0, new

ROOT = Path(__file__).resolve().parents[2]
# Root ignores file modes; without these capabilities it meets them (CI runs as root).
NO_OVERRIDE = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--"]


def run_script(
    code: str, *args: str, prefix: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )


def test_messages_survive_a_new_connection(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    with SQLiteStorage(path) as first:
        ids = first.enqueue([new(1), new(2)], now=T0)
    with SQLiteStorage(path) as second:
        assert [m.id for m in second.list()] == ids[::-1]


def test_commits_are_durable(tmp_path: Path) -> None:
    storage = SQLiteStorage(tmp_path / "q.db")
    db = storage._db  # white box: the pragmas are the durability argument of the README
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL: fsync on every commit
    storage.close()


def test_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "var").mkdir()
    relative = open_storage("sqlite:///var/q.db")
    assert relative.name == str(tmp_path / "var" / "q.db")
    absolute = open_storage(f"sqlite:///{tmp_path}/abs.db")
    assert absolute.name == str(tmp_path / "abs.db")
    relative.close()
    absolute.close()
    for bad in ("sqlite://host/q.db", "sqlite:", "redis://localhost", "nothing"):
        with pytest.raises(ImproperlyConfigured, match="EMAIL_QUEUE_URL"):
            open_storage(bad)


def test_a_missing_directory_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "q.db"
    with pytest.raises(StorageError, match=str(path)):
        SQLiteStorage(path)


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    SQLiteStorage(path).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE mailout_queue_meta SET value = '7' WHERE name = 'schema_version'")
    with pytest.raises(SchemaVersionError) as caught:
        SQLiteStorage(path)
    assert str(path) in str(caught.value)
    assert "schema version 7" in str(caught.value)
    assert "upgrade mailout" in str(caught.value)


def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    path.write_bytes(b"this is not SQLite at all" * 100)
    with pytest.raises(StorageError, match=rf"{path}.*not a database"):
        SQLiteStorage(path)


def test_a_read_only_file_names_the_file_and_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    with SQLiteStorage(path) as storage:
        storage.enqueue([new(1)], now=T0)
    path.chmod(0o444)
    script = """
        import sys
        from mailout.exceptions import StorageError
        from mailout.queue.storage.sqlite import SQLiteStorage
        from tests.queue.conftest import T0, new
        try:
            SQLiteStorage(sys.argv[1]).enqueue([new(2)], now=T0)
        except StorageError as exc:
            sys.exit(print(exc))
        sys.exit("stored into a read-only file")
    """
    result = run_script(script, str(path), prefix=tuple(NO_OVERRIDE))
    assert result.returncode == 0, result.stdout + result.stderr
    assert str(path) in result.stdout
    assert "readonly" in result.stdout
    path.chmod(0o644)
    with SQLiteStorage(path) as storage:
        assert [m.subject for m in storage.list()] == ["message 1"]


def test_a_full_disk_stores_nothing_of_the_batch(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    with SQLiteStorage(path) as storage:
        storage.enqueue([new(1)], now=T0)
    # A file size limit (RLIMIT_FSIZE) makes every write past 256 KiB fail, as a full disk.
    script = """
        import resource, signal, sys
        from mailout.exceptions import StorageError
        from mailout.queue.storage.sqlite import SQLiteStorage
        from tests.queue.conftest import T0, new
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        storage = SQLiteStorage(sys.argv[1])
        resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, 256 * 1024))
        try:
            storage.enqueue([new(n) for n in range(5000)], now=T0)
        except StorageError as exc:
            sys.exit(print(exc))
        sys.exit("a batch bigger than the disk was stored")
    """
    result = run_script(script, str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert str(path) in result.stdout
    assert "storing messages failed" in result.stdout
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    with SQLiteStorage(path) as storage:
        assert [m.subject for m in storage.list()] == ["message 1"]


def test_a_corrupt_row_is_read_back_as_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    storage = SQLiteStorage(path)
    bad, good, bodiless = storage.enqueue([new(1), new(2), new(3)], now=T0)
    with sqlite3.connect(path) as db:
        db.execute(
            "UPDATE mailout_queue_message SET recipients = '{oops', pending = '{oops' WHERE id = ?",
            (bad,),
        )
        db.execute("DELETE FROM mailout_queue_body WHERE message = ?", (bodiless,))
    claimed = {c.id: c for c in storage.claim(worker="w", limit=5, lease=30, now=T0)}
    assert claimed[good].corrupt is None
    corrupt = claimed[bad].corrupt
    assert corrupt is not None
    assert str(path) in corrupt
    assert f"message {bad}" in corrupt
    assert "body is missing" in (claimed[bodiless].corrupt or "")
    listed = {m.id: m.recipients for m in storage.list(state=State.SENDING)}
    assert listed[bad] == ("(unreadable)",)  # list and show still work on a corrupt row
    storage.close()


DUE, UPDATED = "mailout_queue_message_due", "mailout_queue_message_updated"
ROWID = "USING INTEGER PRIMARY KEY (rowid=?)"  # a lookup by id, never a walk of an index
SKIP = {"skip_mailers": "[]", "skip_domains": "[]"}


@pytest.mark.parametrize(
    ("query", "params", "index"),
    [
        ("candidates", {"state": "queued", "priority": 1, "now": T0, **SKIP, "limit": 10}, DUE),
        ("first_due", {"state": "deferred", "priority": 1, "skip_mailers": "[]"}, DUE),
        ("first_due_after", {"state": "deferred", "priority": 1, "now": T0}, DUE),
        ("count_by_state", {}, "COVERING INDEX"),
        ("list_state", {"state": "failed", "limit": 10}, UPDATED),
        ("recent_failures", {"limit": 5}, UPDATED),
        ("purge_pick", {"state": "sent", "before": T0, "limit": 10}, UPDATED),
        ("renew_leases", {"worker": "w", "until": T0}, "(state=?)"),
        ("release_expired", {"now": T0}, "(state=?)"),
        ("events", {"id": 1}, "mailout_queue_event_message"),
        ("claim", {"ids": "[1]", "worker": "w", "until": T0, "now": T0}, ROWID),
        ("release", {"ids": "[1]", "worker": "w", "now": T0}, ROWID),
        ("hold_ids", {"ids": "[1]", "now": T0}, ROWID),
        ("unhold_ids", {"ids": "[1]", "now": T0}, ROWID),
        ("expire_ids", {"ids": "[1]", "now": T0}, ROWID),
        ("retry_ids", {"ids": "[1]", "now": T0}, ROWID),
        (
            "record",
            {
                "id": 1,
                "attempt": 1,
                "worker": "w",
                "state": "sent",
                "pending": "[]",
                "due_at": None,
                "delivered": 1,
                "summary": "",
                "reason": None,
                "now": T0,
            },
            ROWID,
        ),
        ("bodies", {"ids": "[1]"}, ROWID),
        ("purge_messages", {"ids": "[1]"}, ROWID),
    ],
)
def test_queries_use_an_index(
    tmp_path: Path, query: str, params: dict[str, object], index: str
) -> None:
    """At 10^6 rows a full scan costs seconds: every hot query must walk an index, and an
    update of listed ids must look them up, not walk the state index (the planner's choice
    without NOT INDEXED, 100 ms per claim at 10^6 queued)."""
    SQLiteStorage(tmp_path / "q.db").close()
    with sqlite3.connect(tmp_path / "q.db") as db:
        steps = [
            row[-1] for row in db.execute("EXPLAIN QUERY PLAN " + load("sqlite")[query], params)
        ]
    plan = " | ".join(steps)
    assert index in plan, plan
    table_scans = [s for s in steps if s.startswith("SCAN mailout_queue_") and "INDEX" not in s]
    assert not table_scans, plan


def test_two_processes_claim_disjoint_messages(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    with SQLiteStorage(path) as storage:
        ids = storage.enqueue([new(n) for n in range(400)], now=T0)
    script = """
        import sys
        from mailout.queue.storage.sqlite import SQLiteStorage
        from tests.queue.conftest import T0
        storage = SQLiteStorage(sys.argv[1])
        while batch := storage.claim(worker=sys.argv[2], limit=7, lease=60, now=T0):
            print(" ".join(str(m.id) for m in batch), flush=True)
    """
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(script), str(path), f"w{n}"],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for n in range(2)
    ]
    outputs = [p.communicate(timeout=60)[0] for p in procs]
    claimed = [[int(i) for i in out.split()] for out in outputs]
    assert all(p.returncode == 0 for p in procs)
    assert sorted(claimed[0] + claimed[1]) == sorted(ids)  # every message, each exactly once
    assert os.path.exists(path)
