"""The queue on PostgreSQL: enqueue, one worker against four, a million queued.

    .venv/bin/python bench/queue_pg.py                      # ~5 minutes
    .venv/bin/python bench/queue_pg.py --messages 20000 --scale 100000   # quicker

Against the machine's PostgreSQL (``--server``, default 127.0.0.1:5432 database ``test``),
in a schema of its own, dropped at the end; mail goes to the loopback sink of
``tests/servers/sink.py`` in its own process (the one ``bench/smtp_bench.py`` uses).

1. Enqueue ``--messages`` short notifications in batches of 1 000: ``enqueue()`` (rendering
   included) and ``Storage.enqueue`` of messages rendered beforehand (the store alone).
2. Drain ``--messages`` shipping notices (~4.8 KB) into the sink: direct pooled sending
   (``get_connection().send_messages(messages)``, the default pool of 4, messages built
   beforehand: the baseline), then one ``mailout queue worker`` process, then four. The
   queue is filled and put on hold, the workers started and registered, then everything is
   released (their NOTIFY wakes them); the clock runs from the release's commit (no worker
   can claim before it) until the sink has every message.
3. ``--scale`` (default 1 000 000) messages queued (the store alone, then VACUUM ANALYZE):
   one claim of 200 (five in a row, each released), claims back to back (one claimer, then
   four threads at once: SKIP LOCKED), and ``Queue.status()``.

Each drain prints the CPU time of the workers (or of this process, sending directly), of the
sink, of PostgreSQL's backends serving the workers and of PostgreSQL's own processes (WAL
writer, autovacuum, ...), per message and as a share of the machine's cores, and how busy the
machine was (the rest is other processes: the machine is shared). ``--worker-args "--batch
500"`` passes options to every worker; ``--four-args "--mailer-concurrency 2"`` to the four
workers only.

The host's speed drifts from minute to minute on a shared machine; the last line also gives
the ratios at one common speed, gauged by the sink's CPU a message in each drain. One run of
three drains is at the mercy of that drift: ``--rounds N`` runs the three drains N times,
every other round in reverse order (four, one, direct) so that a steady drift favours none,
and ends with each round's ratios and their medians (``--skip enqueue scale --rounds 5``:
~6 minutes at 100 000 messages).

Targets (issue 10): four workers >= 1.5 x one worker and >= 80 % of direct pooled sending;
enqueue >= 10 000 a second in batches.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import psycopg  # noqa: E402
from proc_cpu import CPUMeter, PostgresPids  # noqa: E402
from queue_enqueue import notice, short  # noqa: E402
from tests.servers.sink import SinkServer  # noqa: E402

import mailout  # noqa: E402
from mailout.queue import ALL, Queue  # noqa: E402
from mailout.queue.enqueue import enqueue, prepare  # noqa: E402
from mailout.queue.storage.postgres import PostgresStorage  # noqa: E402

SMTP = "mailout.backends.smtp.EmailBackend"
APPLICATION = "mailout-bench-worker"  # the workers' connections: whose CPU is theirs


class Schema:
    """A queue in a new schema, migrated; dropped on exit."""

    def __init__(self, server: str) -> None:
        self.server = server
        self.name = f"mailout_bench_{uuid.uuid4().hex[:8]}"
        self.url = f"{server}?schema={self.name}"

    def __enter__(self) -> Schema:
        with PostgresStorage(self.url, check_schema=False) as storage:
            storage.migrate()
        return self

    def sql(self, text: str) -> None:
        with psycopg.connect(self.server, autocommit=True) as conn:
            conn.execute(f'SET search_path TO "{self.name}"')
            conn.execute(text)

    def __exit__(self, *exc: object) -> None:
        with psycopg.connect(self.server, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{self.name}" CASCADE')


def bench_enqueue(server: str, count: int) -> tuple[float, float]:
    mailout.configure({"EMAIL_QUEUE_MAILER": None})
    with Schema(server) as schema, PostgresStorage(schema.url) as storage:
        started = time.perf_counter()
        for start in range(0, count, 1000):
            enqueue([short(n) for n in range(start, min(count, start + 1000))], storage=storage)
        full = count / (time.perf_counter() - started)
        rendered = [
            list(prepare([short(n) for n in range(s, s + 1000)])) for s in range(0, count, 1000)
        ]
        started = time.perf_counter()
        for batch in rendered:
            storage.enqueue(batch, now=time.time())
        alone = count / (time.perf_counter() - started)
    return full, alone


def bench_direct(sink: SinkServer, count: int) -> tuple[float, float]:
    messages = [notice(n) for n in range(count)]
    backend = mailout.get_connection(SMTP, host=sink.host, port=sink.port)
    before = sink.count
    meter = _meter(sink, {"this process": lambda: [os.getpid()]}).start()
    started = time.perf_counter()
    assert backend.send_messages(messages) == count
    elapsed = time.perf_counter() - started
    _wait_for(sink, before + count)
    meter.stop()
    print(f"  CPU: {meter.summary(count)}", flush=True)
    return count / elapsed, meter.seconds()["sink"] / count


def bench_workers(
    server: str, sink: SinkServer, count: int, workers: int, extra: list[str]
) -> tuple[float, float]:
    with Schema(server) as schema:
        with Queue(schema.url) as queue:
            for start in range(0, count, 1000):
                queue.enqueue([notice(n) for n in range(start, min(count, start + 1000))])
            queue.hold(ALL)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("EMAIL_")},
            "EMAIL_QUEUE_URL": f"{schema.url}&application_name={APPLICATION}",
            "EMAIL_HOST": sink.host,
            "EMAIL_PORT": str(sink.port),
        }
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "mailout", "queue", "worker", "--progress", "lines", *extra],
                env=env,
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(workers)
        ]
        try:
            with Queue(schema.url) as queue:
                while len(queue.status().workers) < workers:
                    time.sleep(0.05)
                time.sleep(1.0)  # idle: each looked, found nothing, and sleeps
                before = sink.count
                pids = [proc.pid for proc in procs]
                pg = PostgresPids(server, APPLICATION)
                # The release is one transaction (every row's UPDATE and event, then NOTIFY):
                # no worker can claim before it commits, so the clock starts when it returns.
                # (It took 1.3 s for 100 000 messages here; before, inside the clock, that
                # was a tenth of four workers' drain and none of their doing.)
                released = time.perf_counter()
                queue.release(ALL)
                meter = _meter(sink, {"workers": lambda: pids}, pg).start()
                started = time.perf_counter()
                print(f"  released in {started - released:.2f} s (not timed)", flush=True)
                _wait_for(sink, before + count, timeout=600)
                elapsed = time.perf_counter() - started
                meter.stop()
                pg.close()
                print(f"  CPU: {meter.summary(count)}", flush=True)
                sink_cost = meter.seconds()["sink"] / count
                while queue.status().counts[mailout.queue.State.SENT] < count:
                    time.sleep(0.05)
        finally:
            for proc in procs:
                proc.terminate()
            codes = [proc.wait(60) for proc in procs]
        if codes != [0] * workers:
            raise SystemExit(f"workers exited {codes}")
    return count / elapsed, sink_cost


def bench_scale(server: str, count: int) -> None:
    mailout.configure({"EMAIL_QUEUE_MAILER": None})
    with Schema(server) as schema:
        rendered = [
            list(prepare([short(n) for n in range(s, s + 1000)])) for s in range(0, 10000, 1000)
        ]
        with PostgresStorage(schema.url) as storage:
            started = time.perf_counter()
            for start in range(0, count, 1000):
                storage.enqueue(rendered[(start // 1000) % len(rendered)], now=time.time())
            elapsed = time.perf_counter() - started
            print(
                f"  {count:,} queued (the store alone): {count / elapsed:,.0f} a second", flush=True
            )
            schema.sql("VACUUM ANALYZE")
            times = []
            for _ in range(5):
                started = time.perf_counter()
                claimed = storage.claim(worker="bench", limit=200, lease=60, now=time.time())
                times.append(time.perf_counter() - started)
                storage.release([m.id for m in claimed], worker="bench", now=time.time())
            print(
                "  one claim of 200: " + ", ".join(f"{t * 1000:.1f} ms" for t in times), flush=True
            )
            for claimers in (1, 4):
                done = [0] * claimers

                def claim(n: int, done: list[int] = done, rounds: int = 50) -> None:
                    for _ in range(rounds):
                        done[n] += len(
                            storage.claim(
                                worker=f"bench-{n}", limit=200, lease=600, now=time.time()
                            )
                        )

                threads = [threading.Thread(target=claim, args=(n,)) for n in range(claimers)]
                started = time.perf_counter()
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                elapsed = time.perf_counter() - started
                calls = 50 * claimers
                print(
                    f"  claims back to back, {claimers} claimer(s): {calls / elapsed:,.0f} claims "
                    f"a second, {sum(done) / elapsed:,.0f} messages a second "
                    f"({elapsed / calls * 1000:.1f} ms each)",
                    flush=True,
                )
            with Queue(schema.url) as queue:
                times = []
                for _ in range(3):
                    started = time.perf_counter()
                    queue.status()
                    times.append(time.perf_counter() - started)
            print("  Queue.status(): " + ", ".join(f"{t:.2f} s" for t in times), flush=True)


Drains = dict[str, tuple[float, float]]  # drain -> (messages a second, the sink's CPU a message)


def drain_round(
    args: argparse.Namespace, sink: SinkServer, four_args: list[str], *, reverse: bool
) -> Drains:
    """Direct pooled sending, one worker, four workers (in reverse order if ``reverse``)."""
    runs = {
        "direct": lambda: bench_direct(sink, args.messages),
        "one": lambda: bench_workers(args.server, sink, args.messages, 1, args.worker_args),
        "four": lambda: bench_workers(args.server, sink, args.messages, 4, four_args),
    }
    got: Drains = {}
    for name in reversed(runs) if reverse else runs:
        print(f"drain {args.messages:,} notices: {name}", flush=True)
        got[name] = runs[name]()
        print(f"  {name}: {got[name][0]:,.0f} a second", flush=True)
    raw, gauged = ratios(got)
    print(
        f"  four workers{' (' + ' '.join(four_args) + ')' if four_args else ''}: "
        f"{raw[0]:.2f} x one worker, {raw[1]:.0%} of direct pooled",
        flush=True,
    )
    # The host's speed drifts between the three drains (a shared VM): the sink does the same
    # work a message in each, so its CPU a message measures that speed, and a rate times it
    # is the rate at one common speed.
    paces = ", ".join(f"{got[n][1] * 1e6:.1f}" for n in ("direct", "one", "four"))
    print(
        f"  at the same host speed (the sink's CPU a message: {paces} µs): four workers "
        f"{gauged[0]:.2f} x one worker, {gauged[1]:.0%} of direct pooled",
        flush=True,
    )
    return got


def ratios(got: Drains) -> tuple[tuple[float, float], tuple[float, float]]:
    """(four / one, four / direct), raw and gauged by the sink's CPU a message."""
    rate = {name: got[name][0] for name in got}
    at_speed = {name: got[name][0] * got[name][1] for name in got}
    raw = (rate["four"] / rate["one"], rate["four"] / rate["direct"])
    gauged = (at_speed["four"] / at_speed["one"], at_speed["four"] / at_speed["direct"])
    return raw, gauged


def print_rounds(rounds: list[Drains]) -> None:
    print(
        "\nround | direct | one worker | four workers | raw: 4 vs 1, vs direct "
        "| sink-gauged: 4 vs 1, vs direct",
        flush=True,
    )
    table = [ratios(got) for got in rounds]
    for n, (got, (raw, gauged)) in enumerate(zip(rounds, table, strict=True), 1):
        rates = " | ".join(f"{got[k][0]:,.0f}" for k in ("direct", "one", "four"))
        print(
            f"{n} | {rates} | {raw[0]:.2f} x, {raw[1]:.0%} | {gauged[0]:.2f} x, {gauged[1]:.0%}",
            flush=True,
        )
    rates = " | ".join(
        f"{statistics.median(got[k][0] for got in rounds):,.0f}" for k in ("direct", "one", "four")
    )
    med = [statistics.median(r[i][j] for r in table) for i in (0, 1) for j in (0, 1)]
    print(
        f"median | {rates} | {med[0]:.2f} x, {med[1]:.0%} | {med[2]:.2f} x, {med[3]:.0%}",
        flush=True,
    )


def _meter(sink: SinkServer, groups: dict[str, Any], pg: PostgresPids | None = None) -> CPUMeter:
    sink_pid = int(sink._child.pid)  # the sink's own process
    groups = {**groups, "sink": lambda: [sink_pid]}
    if pg is not None:
        groups.update({"PostgreSQL for them": pg.clients, "PostgreSQL's own": pg.server})
    return CPUMeter(groups)


def _wait_for(sink: SinkServer, expected: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while sink.count < expected and time.monotonic() < deadline:
        time.sleep(0.01)
    if sink.count != expected:
        raise SystemExit(f"the sink counted {sink.count} messages, expected {expected}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--scale", type=int, default=1_000_000)
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run the three drains this many times, alternating their order; print medians",
    )
    parser.add_argument("--skip", nargs="*", default=(), choices=("enqueue", "drain", "scale"))
    parser.add_argument(
        "--worker-args",
        type=str.split,
        default=[],
        help='options for every worker, e.g. "--batch 500" (default: none, the settings)',
    )
    parser.add_argument(
        "--four-args",
        type=str.split,
        default=None,
        help='options for the four workers only (default: --worker-args), e.g. "--batch 500"',
    )
    args = parser.parse_args()
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs", flush=True)
    if "enqueue" not in args.skip:
        full, alone = bench_enqueue(args.server, args.messages)
        print(
            f"enqueue {args.messages:,} short notifications, batches of 1 000: enqueue() "
            f"{full:,.0f} a second; the store alone {alone:,.0f} a second",
            flush=True,
        )
    if "drain" not in args.skip:
        four_args = args.worker_args if args.four_args is None else args.four_args
        with SinkServer(process=True) as sink:
            mailout.configure({"EMAIL_HOST": sink.host, "EMAIL_PORT": sink.port})
            rounds = [
                drain_round(args, sink, four_args, reverse=n % 2 == 1) for n in range(args.rounds)
            ]
        if len(rounds) > 1:
            print_rounds(rounds)
    if "scale" not in args.skip:
        print(f"{args.scale:,} queued:", flush=True)
        bench_scale(args.server, args.scale)


if __name__ == "__main__":
    main()
