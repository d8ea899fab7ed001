"""The crash harness: enqueue and deliver while processes are SIGKILLed, then count.

Shared by the CI test (``test_crash.py``, a few thousand messages) and ``bench/queue_crash.py``
(a longer run). Real processes, a real SQLite file, a real recording SMTP server:

* an enqueuer process sends batches of random size with idempotency keys and prints each
  batch's range once ``enqueue()`` returned; it is SIGKILLed now and then and restarted where
  its printed acknowledgements end;
* worker processes (``mailout queue worker``) are SIGKILLed at random moments, and also by
  the SMTP server right after it wrote the ``250`` for a message (before the worker could
  commit it), and restarted;
* then the killing stops, the queue drains, and the harness reports what was acknowledged,
  stored, sent and received.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tests.servers.recording import Accepted, RecordingServer, pid_of_port

ROOT = Path(__file__).resolve().parents[2]

ENQUEUER = """
import random, sys, time
import mailout
from mailout.queue import enqueue
start, total, seed = map(int, sys.argv[1:4])
rng = random.Random(seed)
i = start
while i < total:
    n = min(rng.randint(1, 40), total - i)
    batch = [
        mailout.EmailMessage(f"crash {k}", "body", "shop@example.com", [f"u{k}@d{k % 7}.example"])
        for k in range(i, i + n)
    ]
    enqueue(batch, key=[f"crash-{k}" for k in range(i, i + n)])
    print(i, i + n, flush=True)
    i += n
    time.sleep(rng.uniform(0, 0.1))  # an application's pace, so that kills land mid-stream
print("done", flush=True)
"""


@dataclass
class CrashResult:
    messages: int
    acknowledged: set[str] = field(default_factory=set)
    stored: dict[str, tuple[str, str]] = field(default_factory=dict)  # key -> (message_id, state)
    received: Counter[str] = field(default_factory=Counter)  # message_id -> times received
    worker_kills: int = 0
    kills_after_250: int = 0
    enqueuer_kills: int = 0
    worker_exit_codes: list[int] = field(default_factory=list)
    batch: int = 0
    concurrency: int = 0
    seconds: float = 0.0

    @property
    def duplicates(self) -> int:
        return sum(count - 1 for count in self.received.values() if count > 1)

    @property
    def bound(self) -> int:
        """README's bound: each killed worker may deliver again what it held, at most
        ``batch * concurrency`` messages."""
        return (self.worker_kills + self.kills_after_250) * self.batch * self.concurrency

    def summary(self) -> str:
        return (
            f"{self.messages} messages, {len(self.acknowledged)} acknowledged, "
            f"{len(self.stored)} stored, {sum(self.received.values())} received "
            f"({len(self.received)} distinct, {self.duplicates} duplicates, bound {self.bound}); "
            f"kills: {self.worker_kills} workers at random, {self.kills_after_250} after a 250, "
            f"{self.enqueuer_kills} enqueuers; {self.seconds:.1f} s"
        )


class _Enqueuer:
    def __init__(self, db: Path, total: int, env: dict[str, str]) -> None:
        self.db, self.total, self.env = db, total, env
        self.acked_to = 0
        self.acked: set[str] = set()
        self.done = False
        self.proc: subprocess.Popen[str] | None = None
        self.restarts = 0

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                ENQUEUER,
                str(self.acked_to),
                str(self.total),
                str(self.restarts),
            ],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.restarts += 1
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        with proc.stdout:
            for line in proc.stdout:
                if not line.endswith("\n"):
                    break  # cut off by the kill: not an acknowledgement
                if line.strip() == "done":
                    self.done = True
                    continue
                start, end = map(int, line.split())
                self.acked.update(f"crash-{k}" for k in range(start, end))
                self.acked_to = max(self.acked_to, end)

    def kill(self) -> bool:
        if self.proc is not None and self.proc.poll() is None and not self.done:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            return True
        return False

    def keep_alive(self) -> None:
        if not self.done and (self.proc is None or self.proc.poll() is not None):
            if self.proc is not None and self.proc.stdout is not None:
                time.sleep(0.05)  # let the reader thread take the last lines
            self.start()


def run_crash(
    db: Path,
    *,
    messages: int,
    chaos_seconds: float,
    workers: int = 2,
    batch: int = 20,
    concurrency: int = 2,
    lease: float = 1.0,
    kill_after_250: float = 0.01,
    seed: int = 1,
    drain_timeout: float = 60.0,
) -> CrashResult:
    rng = random.Random(seed)
    result = CrashResult(messages, batch=batch, concurrency=concurrency)
    procs: list[subprocess.Popen[bytes]] = []
    chaos = threading.Event()
    chaos.set()
    lock = threading.Lock()

    def after_250(accepted: Accepted) -> None:
        if not chaos.is_set() or rng.random() >= kill_after_250:
            return
        with lock:
            alive = [p.pid for p in procs if p.poll() is None]
        pid = pid_of_port(accepted.port, alive)
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            result.kills_after_250 += 1

    started = time.monotonic()
    with RecordingServer(on_accept=after_250) as server:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("EMAIL_")},
            "EMAIL_QUEUE_URL": f"sqlite:///{db}",
            "EMAIL_HOST": server.host,
            "EMAIL_PORT": str(server.port),
        }
        command = [
            sys.executable, "-m", "mailout", "queue", "worker", "--progress", "lines",
            "--lease", str(lease), "--batch", str(batch), "--concurrency", str(concurrency),
        ]  # fmt: skip

        def spawn() -> subprocess.Popen[bytes]:
            return subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )

        enqueuer = _Enqueuer(db, messages, env)
        enqueuer.start()
        with lock:
            procs.extend(spawn() for _ in range(workers))
        try:
            deadline = time.monotonic() + chaos_seconds
            while time.monotonic() < deadline:
                time.sleep(rng.uniform(0.1, 0.6))
                roll = rng.random()
                with lock:
                    if roll < 0.5:
                        victim = rng.choice(procs)
                        if victim.poll() is None:
                            victim.send_signal(signal.SIGKILL)
                            victim.wait()
                            result.worker_kills += 1
                    elif roll < 0.75 and enqueuer.kill():
                        result.enqueuer_kills += 1
                    for n, proc in enumerate(procs):
                        if proc.poll() is not None:
                            procs[n] = spawn()
                enqueuer.keep_alive()
            chaos.clear()
            # No more kills: the enqueuer finishes, the workers drain (dead leases expire).
            while not enqueuer.done:
                enqueuer.keep_alive()
                time.sleep(0.1)
            with lock:
                for n, proc in enumerate(procs):
                    if proc.poll() is not None:
                        procs[n] = spawn()
            drain_deadline = time.monotonic() + drain_timeout
            while _waiting(db) and time.monotonic() < drain_deadline:
                time.sleep(0.2)
        finally:
            chaos.clear()
            with lock:
                _wait_registered(db, [p.pid for p in procs if p.poll() is None])
                for proc in procs:
                    if proc.poll() is None:
                        proc.send_signal(signal.SIGTERM)
                for proc in procs:
                    try:
                        result.worker_exit_codes.append(proc.wait(30))
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        result.worker_exit_codes.append(proc.wait())
            enqueuer.kill()
        for accepted in server.accepted:
            result.received[accepted.message_id] += 1
    result.acknowledged = set(enqueuer.acked)
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT idempotency_key, message_id, state FROM mailout_queue_message")
        result.stored = {key: (mid, state) for key, mid, state in rows}
    result.seconds = time.monotonic() - started
    return result


def _waiting(db: Path) -> bool:
    try:
        with sqlite3.connect(db, timeout=10) as conn:
            row = conn.execute(
                "SELECT count(*) FROM mailout_queue_message WHERE state <> 'sent'"
            ).fetchone()
    except sqlite3.Error:
        return True
    return bool(row[0])


def _wait_registered(db: Path, pids: list[int], timeout: float = 20.0) -> None:
    """Wait until each worker registered itself (it handles SIGTERM from then on: a worker
    still importing would simply die of it, claiming nothing)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with sqlite3.connect(db, timeout=10) as conn:
                seen = {row[0] for row in conn.execute("SELECT pid FROM mailout_queue_worker")}
        except sqlite3.Error:
            seen = set()
        if set(pids) <= seen:
            return
        time.sleep(0.05)
