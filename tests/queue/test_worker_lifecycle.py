"""A worker's life: signals, leases and heartbeats, a store that fails, exit statuses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import mailout
from mailout.queue import Hooks, Queue, RetryPolicy, State, Worker, WorkerOptions
from mailout.queue.storage.sqlite import SQLiteStorage
from tests.queue import backends
from tests.queue.conftest import T0, Clock
from tests.queue.helpers import (
    Recorder,
    drain,
    live_worker,
    running,
    slow_and_quick_mailers,
    smtp_to,
    states,
)
from tests.servers.faulty import FaultyServer, Script

ROOT = Path(__file__).resolve().parents[2]
NO_OVERRIDE = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--"]


def message(n: int) -> mailout.EmailMessage:
    return mailout.EmailMessage(
        f"Message {n}", "Body", "shop@example.com", [f"user{n}@example.com"]
    )


def worker_process(
    db: Path,
    server: FaultyServer | None,
    *args: str,
    prefix: tuple[str, ...] = (),
    code: str | None = None,
) -> subprocess.Popen[str]:
    env = {**os.environ, "EMAIL_QUEUE_URL": f"sqlite:///{db}", "EMAIL_TIMEOUT": "5"}
    if server is not None:
        env |= {"EMAIL_HOST": server.host, "EMAIL_PORT": str(server.port)}
    command = (
        ["-c", code] if code else ["-m", "mailout", "queue", "worker", "--progress", "lines", *args]
    )
    return subprocess.Popen(
        [*prefix, sys.executable, *command],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def enqueue(db: Path, count: int) -> list[int]:
    with Queue(f"sqlite:///{db}") as queue:
        return [i for i in queue.enqueue([message(n) for n in range(count)]) if i is not None]


def wait_for(predicate: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


def test_sigterm_finishes_deliveries_in_flight_then_exits_0(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    ids = enqueue(db, 5)
    with FaultyServer(Script(delay=0.4)) as server:  # every reply comes 0.4 s late
        proc = worker_process(db, server)
        wait_for(lambda: any(c.startswith("MAIL") for c in server.commands))
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "event=worker-stopping" in err
    assert "signal=SIGTERM" in err
    assert "event=worker-stopped" in err
    assert "status=0" in err
    with Queue(f"sqlite:///{db}") as queue:
        assert states(queue) == {"sent": 5}  # finished, recorded, nothing left half-done
        assert queue.status().workers == ()
        assert {queue.show(i).summary.attempts for i in ids} == {1}
    assert len(server.transactions) == 5


def test_sigint_when_idle_exits_0(tmp_path: Path) -> None:
    proc = worker_process(tmp_path / "q.db", None)
    assert proc.stderr is not None
    line = proc.stderr.readline()
    assert "event=worker-started" in line
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err


def test_once_delivers_what_is_due_and_exits_0(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    ids = enqueue(db, 3)
    with FaultyServer() as server:
        proc = worker_process(db, server, "--once", "--batch", "2")
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    sent_lines = [line for line in err.splitlines() if " event=sent " in line]
    assert sorted(int(line.split(" id=")[1].split()[0]) for line in sent_lines) == ids
    assert all(" code=250 " in line and " relay_id=" in line for line in sent_lines)


def test_a_read_only_store_stops_the_worker_with_the_file_named(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    enqueue(db, 2)
    db.chmod(0o444)
    with FaultyServer() as server:
        proc = worker_process(db, server, "--once", prefix=tuple(NO_OVERRIDE))
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert str(db) in err
    assert "readonly" in err
    assert server.transactions == []
    db.chmod(0o644)
    with Queue(f"sqlite:///{db}") as queue:
        assert states(queue) == {"queued": 2}


def test_a_full_disk_after_sending_marks_nothing_sent(tmp_path: Path) -> None:
    """The store fails between the relay's 250 and the commit: the worker stops (exit 1), the
    messages stay claimed, and once the lease expires they are delivered again — the window
    of duplicates the README states."""
    db = tmp_path / "q.db"
    ids = enqueue(db, 4)
    code = (
        "import signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "from mailout.cli import main\n"
        "sys.exit(main(['queue', 'worker', '--once', '--lease', '1', '--progress', 'lines']))\n"
    )
    with FaultyServer() as server:
        env_hooks = {"EMAIL_QUEUE_HOOKS": '{"pre_send": "tests.queue.backends.fill_disk"}'}
        os.environ.update(env_hooks)
        try:
            proc = worker_process(db, server, code=code)
        finally:
            for name in env_hooks:
                del os.environ[name]
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 1, err
        assert str(db) in err
        assert "recording delivery results failed" in err
        assert len(server.transactions) == 4  # the relay has them...
        with Queue(f"sqlite:///{db}") as queue:
            assert states(queue) == {"sending": 4}  # ...the queue does not call them sent
        time.sleep(1.1)  # the dead worker's lease runs out
        proc = worker_process(db, server, "--once")
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    with Queue(f"sqlite:///{db}") as queue:
        assert states(queue) == {"sent": 4}
        assert {queue.show(i).summary.attempts for i in ids} == {2}
        assert "lease-expired" in [e.kind for e in queue.show(ids[0]).events]
    assert len(server.transactions) == 8  # each delivered twice: the documented window


def test_a_killed_workers_mail_is_taken_over_after_its_lease(clock: Clock) -> None:
    mailout.configure(
        {"EMAIL_QUEUE_URL": "memory:", "EMAIL_QUEUE_MAILER": "mailout.backends.locmem.EmailBackend"}
    )
    queue = Queue(clock=clock)
    [id_] = queue.enqueue([message(1)])
    queue.storage.claim(worker="dead-worker", limit=1, lease=30, now=clock.now)
    drain(queue.storage, clock)
    assert states(queue) == {"sending": 1}
    clock.advance(31)
    recorder = Recorder()
    drain(queue.storage, clock, reporter=recorder)
    assert states(queue) == {"sent": 1}
    assert queue.show(id_).summary.attempts == 2  # type: ignore[arg-type]
    assert recorder.named("leases-expired") == [{"count": 1}]
    assert len(mailout.outbox) == 1


def test_the_heartbeat_keeps_a_slow_delivery_s_lease(tmp_path: Path) -> None:
    """A delivery that takes longer than the lease keeps it, while another worker watches."""
    db = tmp_path / "q.db"
    ids = enqueue(db, 3)
    with FaultyServer(Script(delay=0.3)) as server:  # about 1.5 s for the whole delivery
        smtp_to(server)
        slow = Worker(
            SQLiteStorage(db),
            options=WorkerOptions(lease=0.6, batch=10),
            hooks=Hooks(),
            policy=RetryPolicy(),
        )
        other = Worker(
            SQLiteStorage(db),
            options=WorkerOptions(lease=0.6, batch=10, poll_interval=0.05),
            hooks=Hooks(),
            policy=RetryPolicy(),
        )
        watcher = threading.Thread(target=other.run, kwargs={"handle_signals": False})
        started = time.monotonic()
        assert slow.run(once=True, handle_signals=False) == 0
        assert time.monotonic() - started > 1.0  # longer than the lease
        watcher.start()
        time.sleep(0.2)
        other.stop()
        watcher.join(10)
    with Queue(f"sqlite:///{db}") as queue:
        assert states(queue) == {"sent": 3}
        assert all([e.kind for e in queue.show(i).events] == ["sent"] for i in ids)
    assert len(server.transactions) == 3


def test_the_loop_failing_returns_1(tmp_path: Path) -> None:
    storage = SQLiteStorage(tmp_path / "q.db")
    storage.enqueue([], now=T0)
    worker = Worker(storage, options=WorkerOptions(), hooks=Hooks(), policy=RetryPolicy())
    storage.close()  # the store goes away under the worker
    assert worker.run(once=True, handle_signals=False) == 1
    assert worker.fatal is not None
    assert str(tmp_path / "q.db") in str(worker.fatal)


def test_keep_body_after_send_off_drops_sent_bodies(clock: Clock) -> None:
    mailout.configure(
        {"EMAIL_QUEUE_URL": "memory:", "EMAIL_QUEUE_MAILER": "mailout.backends.locmem.EmailBackend"}
    )
    queue = Queue(clock=clock)
    [id_] = queue.enqueue([message(1)])
    drain(queue.storage, clock, keep_body=False)
    assert queue.show(id_).data is None  # type: ignore[arg-type]
    assert queue.show(id_).summary.state == State.SENT  # type: ignore[arg-type]


@pytest.mark.parametrize("batch", [1, 7])
def test_every_batch_size_delivers_everything(clock: Clock, batch: int) -> None:
    mailout.configure(
        {"EMAIL_QUEUE_URL": "memory:", "EMAIL_QUEUE_MAILER": "mailout.backends.locmem.EmailBackend"}
    )
    queue = Queue(clock=clock)
    queue.enqueue([message(n) for n in range(20)])
    drain(queue.storage, clock, batch=batch, concurrency=3)
    assert states(queue) == {"sent": 20}
    assert sorted(m.subject for m in mailout.outbox) == sorted(f"Message {n}" for n in range(20))


def test_new_mail_goes_on_a_free_delivery_thread_while_another_delivery_runs() -> None:
    # Mailer a's one delivery takes 2 s (ten calls of 0.2 s); the worker's other delivery
    # thread is free and its claims find nothing. Mail of mailer b announced meanwhile goes
    # at once, not when a's delivery ends (nor after the 5 s poll interval).
    queue = slow_and_quick_mailers(10, 0)
    with running(live_worker(queue.storage, batch=10, concurrency=2, poll_interval=5)) as worker:
        wait_for(lambda: backends.SlowBackend.most_at_once == 1)  # a's delivery runs
        time.sleep(0.3)  # the loop has looked for more, found none, and waits
        queue.enqueue(
            [mailout.EmailMessage("B", "Body", "s@example.com", ["u@b.example"])], mailer="b"
        )
        announced = time.monotonic()
        worker.wake()  # as the store's announcement does
        wait_for(lambda: any(m.mailer == "b" for m in queue.list(State.SENT)), 5.0)
        assert time.monotonic() - announced < 1.0
        assert sum(m.mailer == "a" for m in queue.list(State.SENT)) < 10  # a's still runs
