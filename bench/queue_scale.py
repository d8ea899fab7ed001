"""A million messages: enqueue them, time ``queue status`` and a claim, drain them, watch RSS.

    .venv/bin/python bench/queue_scale.py                  # 1 000 000 messages, ~5 minutes
    .venv/bin/python bench/queue_scale.py --messages 100000

1. Enqueue ``--messages`` short notifications in batches of 1 000 (each durably committed)
   into a new SQLite file; report the rate and the file's size.
2. With all of them queued: ``mailout queue status`` as a command (a new process: start-up
   included) and ``Queue.status()`` in this process, three times each; one claim of 200 and
   its release (the worker's hot query).
3. Drain them with one worker process (``mailout queue worker --once``) into the loopback
   sink (its own process), sampling the worker's resident memory (``VmRSS``) every second.
   The worker never loads the queue: RSS should stay flat from the first to the last sample.
4. ``queue status`` again, with everything sent.

Targets (issue 9): RSS flat while draining; ``queue status`` under a second at 10^6.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from queue_enqueue import short  # noqa: E402
from tests.servers.sink import SinkServer  # noqa: E402

import mailout  # noqa: E402
from mailout.queue import Queue  # noqa: E402
from mailout.queue.enqueue import enqueue  # noqa: E402
from mailout.queue.storage.sqlite import SQLiteStorage  # noqa: E402


def rss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def status_times(url: str, env: dict[str, str]) -> tuple[list[float], list[float]]:
    command, in_process = [], []
    for _ in range(3):
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "mailout", "queue", "status", "--json", "--url", url],
            env=env, check=True, capture_output=True, cwd=ROOT,
        )  # fmt: skip
        command.append(time.perf_counter() - started)
        with Queue(url) as queue:
            started = time.perf_counter()
            queue.status()
            in_process.append(time.perf_counter() - started)
    return command, in_process


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--dir", help="where to put the database (default: a temporary folder)")
    args = parser.parse_args()
    count = args.messages
    folder = args.dir or tempfile.mkdtemp(prefix="mailout-scale-")
    path = Path(folder) / "scale.db"
    url = f"sqlite:///{path}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMAIL_")}
    for suffix in ("", "-wal", "-shm"):  # a new queue every run
        if os.path.exists(f"{path}{suffix}"):
            os.remove(f"{path}{suffix}")
    print(f"{count:,} messages in {path}", flush=True)

    storage = SQLiteStorage(path)
    mailout.configure({"EMAIL_QUEUE_MAILER": None})
    started = time.perf_counter()
    for start in range(0, count, 1000):
        enqueue([short(n) for n in range(start, min(count, start + 1000))], storage=storage)
    elapsed = time.perf_counter() - started
    storage.close()
    size = sum(os.path.getsize(f"{path}{s}") for s in ("", "-wal") if os.path.exists(f"{path}{s}"))
    print(
        f"enqueue: {count / elapsed:,.0f} messages/s ({elapsed:.0f} s); "
        f"file {size / 2**20:,.0f} MiB",
        flush=True,
    )

    command, in_process = status_times(url, env)
    print(
        "queue status, all queued: command "
        + ", ".join(f"{t:.2f} s" for t in command)
        + "; Queue.status() "
        + ", ".join(f"{t:.3f} s" for t in in_process),
        flush=True,
    )
    with SQLiteStorage(path) as storage:
        claims = []
        for _ in range(5):  # the first one also reads the index pages from disk
            started = time.perf_counter()
            claimed = storage.claim(worker="bench", limit=200, lease=60, now=time.time())
            claims.append(time.perf_counter() - started)
            storage.release([m.id for m in claimed], worker="bench", now=time.time())
    print(
        f"claims of {len(claimed)} at {count:,} queued: "
        + ", ".join(f"{t * 1000:.1f} ms" for t in claims),
        flush=True,
    )
    with SinkServer(process=True) as sink:
        env_worker = {
            **env,
            "EMAIL_QUEUE_URL": url,
            "EMAIL_HOST": sink.host,
            "EMAIL_PORT": str(sink.port),
        }
        started = time.perf_counter()
        worker = subprocess.Popen(
            [sys.executable, "-m", "mailout", "queue", "worker", "--once", "--progress", "lines"],
            env=env_worker, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        samples: list[tuple[float, int, int]] = []
        while worker.poll() is None:
            rss = rss_kib(worker.pid)
            if rss is not None:
                samples.append((time.perf_counter() - started, sink.count, rss))
            time.sleep(1.0)
        elapsed = time.perf_counter() - started
        delivered = sink.count
    if worker.returncode != 0 or delivered != count:
        raise SystemExit(
            f"worker exited {worker.returncode}; the sink counted {delivered} of {count}"
        )
    print(f"drain: {count / elapsed:,.0f} messages/s ({elapsed:.0f} s), worker exit 0", flush=True)
    steady = [s for s in samples if s[1] >= count * 0.05]  # after the first 5 %: warmed up
    for label, sample in (
        ("first", steady[0]),
        ("middle", steady[len(steady) // 2]),
        ("last", steady[-1]),
    ):
        print(
            f"  RSS at {sample[1]:>9,} delivered ({label}): {sample[2] / 1024:6.1f} MiB", flush=True
        )
    low, high = min(s[2] for s in steady), max(s[2] for s in steady)
    print(
        f"  RSS over {len(steady)} samples: {low / 1024:.1f} to {high / 1024:.1f} MiB", flush=True
    )
    command, in_process = status_times(url, env)
    print(
        "queue status, all sent: command "
        + ", ".join(f"{t:.2f} s" for t in command)
        + "; Queue.status() "
        + ", ".join(f"{t:.3f} s" for t in in_process),
        flush=True,
    )
    if not args.dir:
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(f"{path}{suffix}"):
                os.remove(f"{path}{suffix}")
        os.rmdir(folder)


if __name__ == "__main__":
    main()
