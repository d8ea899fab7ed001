"""The crash harness: enqueue and deliver while processes are SIGKILLed, then count.

Shared by the CI tests (``test_crash.py``: SQLite, and PostgreSQL with four workers; a few
thousand messages) and ``bench/queue_crash.py`` (a longer run). Real processes, a real SQLite
file or PostgreSQL schema, a real recording SMTP server:

* an enqueuer process sends batches of random size with idempotency keys and prints each
  batch's range once ``enqueue()`` returned; it is SIGKILLed now and then and restarted where
  its printed acknowledgements end;
* worker processes (``mailout queue worker``) are SIGKILLed at random moments, and also by
  the SMTP server right after it wrote the ``250`` for a message (before the worker could
  commit it), and restarted;
* then the killing stops, the queue drains, and the harness reports what was acknowledged,
  stored, sent and received, and which workers' leases expired (only killed ones may).

The duplicate bound (README, "What is guaranteed"): a worker records outcomes as each burst
of replies comes in, so a killed worker leaves unrecorded at most what its connections had
in flight: for each delivery (``concurrency`` of them), up to ``pool size`` connections, each
with the burst it was reading and the one waiting for its commit, i.e. at most
``concurrency x min(batch, 2 x pool size x pool batch)`` messages (the pool's batch: 50).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.servers.recording import Accepted, RecordingServer, pid_of_port

ROOT = Path(__file__).resolve().parents[2]
MIN_KILLS_AFTER_250 = 3  # what check() asks of a run
MIN_ENQUEUER_KILLS = 3  # likewise

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
    accepted_in_chaos: int = 0
    enqueuer_kills: int = 0
    worker_exit_codes: list[int] = field(default_factory=list)
    batch: int = 0
    concurrency: int = 0
    pool_size: int = 4
    pool_batch: int = 50
    seconds: float = 0.0
    killed_pids: set[int] = field(default_factory=set)
    expired_owners: list[str] = field(default_factory=list)  # workers whose leases expired

    @property
    def duplicates(self) -> int:
        return sum(count - 1 for count in self.received.values() if count > 1)

    @property
    def per_kill(self) -> int:
        """README's bound per killed worker: what its connections had in flight."""
        return self.concurrency * min(self.batch, 2 * self.pool_size * self.pool_batch)

    @property
    def bound(self) -> int:
        return (self.worker_kills + self.kills_after_250) * self.per_kill

    @property
    def live_leases_expired(self) -> list[str]:
        """Leases that expired although their worker was not killed (must be none)."""
        return [w for w in self.expired_owners if int(w.split(":")[-2]) not in self.killed_pids]

    def summary(self) -> str:
        return (
            f"{self.messages} messages, {len(self.acknowledged)} acknowledged, "
            f"{len(self.stored)} stored, {sum(self.received.values())} received "
            f"({len(self.received)} distinct, {self.duplicates} duplicates, bound {self.bound}); "
            f"kills: {self.worker_kills} workers at random, {self.kills_after_250} after a 250, "
            f"{self.enqueuer_kills} enqueuers; {self.accepted_in_chaos} accepted in the chaos; "
            f"{self.seconds:.1f} s"
        )


class _Enqueuer:
    def __init__(self, total: int, env: dict[str, str]) -> None:
        self.total, self.env = total, env
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

    def behind(self, kills: int) -> bool:
        """Fewer than MIN_ENQUEUER_KILLS kills so far, with (kills + 1) / (MIN + 1) of the
        messages acknowledged: it is killed now, rather than finish with too few (a run's
        random kills once missed it all but twice before it was done)."""
        share = (kills + 1) * self.total // (MIN_ENQUEUER_KILLS + 1)
        return kills < MIN_ENQUEUER_KILLS and self.acked_to >= share

    def keep_alive(self) -> None:
        if not self.done and (self.proc is None or self.proc.poll() is not None):
            if self.proc is not None and self.proc.stdout is not None:
                time.sleep(0.05)  # let the reader thread take the last lines
            self.start()


def run_crash(
    url: str,
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
        if chaos.is_set():
            result.accepted_in_chaos += 1
        if not chaos.is_set() or rng.random() >= kill_after_250:
            return
        # Under the lock, and the chaos checked again: once the chaos is over (cleared under
        # the lock) no worker dies any more, so every worker left is one that should stop
        # cleanly on SIGTERM at the end.
        with lock:
            if not chaos.is_set():
                return
            alive = {p.pid: p for p in procs if p.poll() is None}
            pid = pid_of_port(accepted.port, alive)
            if pid is not None:
                alive[pid].send_signal(signal.SIGKILL)
                alive[pid].wait()
                result.kills_after_250 += 1
                result.killed_pids.add(pid)

    started = time.monotonic()
    with RecordingServer(on_accept=after_250) as server:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("EMAIL_")},
            "EMAIL_QUEUE_URL": url,
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

        enqueuer = _Enqueuer(messages, env)
        enqueuer.start()
        with lock:
            procs.extend(spawn() for _ in range(workers))
        try:
            deadline = time.monotonic() + chaos_seconds
            # Kills after a 250 need deliveries during the chaos; on a loaded machine workers
            # killed at random deliver little, so the chaos goes on (without random kills, up
            # to its length again) until a few of those kills have happened too.
            while time.monotonic() < deadline or (
                result.kills_after_250 < MIN_KILLS_AFTER_250
                and time.monotonic() < deadline + chaos_seconds
            ):
                time.sleep(rng.uniform(0.1, 0.6))
                roll = rng.random() if time.monotonic() < deadline else 1.0
                with lock:
                    if roll < 0.5:
                        victim = rng.choice(procs)
                        if victim.poll() is None:
                            victim.send_signal(signal.SIGKILL)
                            victim.wait()
                            result.worker_kills += 1
                            result.killed_pids.add(victim.pid)
                    elif (
                        roll < 0.75 or enqueuer.behind(result.enqueuer_kills)
                    ) and enqueuer.kill():
                        result.enqueuer_kills += 1
                    for n, proc in enumerate(procs):
                        if proc.poll() is not None:
                            procs[n] = spawn()
                enqueuer.keep_alive()
            with lock:
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
            while _waiting(url) and time.monotonic() < drain_deadline:
                time.sleep(0.2)
        finally:
            chaos.clear()
            with lock:
                _wait_registered(url, [p.pid for p in procs if p.poll() is None])
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
    rows = query(url, "SELECT idempotency_key, message_id, state FROM mailout_queue_message")
    result.stored = {key: (mid, state) for key, mid, state in rows}
    text = "SELECT text FROM mailout_queue_event WHERE kind = 'lease-expired'"
    result.expired_owners = [t.split()[4] for (t,) in query(url, text)]
    result.seconds = time.monotonic() - started
    return result


@contextlib.contextmanager
def _connect(url: str) -> Iterator[Any]:
    if url.startswith("sqlite:"):
        with sqlite3.connect(url.removeprefix("sqlite:///"), timeout=10) as conn:
            yield conn
        return
    import psycopg

    from tests.queue.pg import SERVER, schema_of

    with psycopg.connect(SERVER, autocommit=True) as conn:
        conn.execute("SELECT set_config('search_path', %s, false)", [schema_of(url)])
        yield conn


def query(url: str, sql: str) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` from the queue at ``url`` (SQLite or PostgreSQL), outside mailout."""
    with _connect(url) as conn:
        return [tuple(row) for row in conn.execute(sql).fetchall()]


def _waiting(url: str) -> bool:
    try:
        rows = query(url, "SELECT count(*) FROM mailout_queue_message WHERE state <> 'sent'")
    except Exception:  # the file or server is busy: look again
        return True
    return bool(rows[0][0])


def _wait_registered(url: str, pids: list[int], timeout: float = 20.0) -> None:
    """Wait until each worker registered itself (it handles SIGTERM from then on: a worker
    still importing would simply die of it, claiming nothing)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            seen = {row[0] for row in query(url, "SELECT pid FROM mailout_queue_worker")}
        except Exception:
            seen = set()
        if set(pids) <= seen:
            return
        time.sleep(0.05)
