"""CPU time used by groups of processes while a benchmark runs, read from /proc (Linux).

    pg = PostgresPids(server, "my-bench")
    meter = CPUMeter({"workers": lambda: pids, "sink": lambda: [sink_pid],
                      "PostgreSQL for them": pg.clients, "PostgreSQL's own": pg.server})
    meter.start(); ...; meter.stop()
    print(meter.summary(messages=100_000))

A thread samples every process of each group every ``interval`` seconds: a process that
appears during the run counts from the moment it was first seen (its start-up is lost if it
began before that), one that exits counts up to its last sample. ``machine`` is every core's
busy time (/proc/stat): what the groups do not explain is other processes (the machine is
shared).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

__all__ = ["CPUMeter", "PostgresPids"]

TICKS = os.sysconf("SC_CLK_TCK")


def _cpu(pid: int) -> float | None:
    """User + system seconds of ``pid``, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def _machine() -> float:
    with open("/proc/stat", "rb") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return (sum(values[:8]) - idle) / TICKS


class PostgresPids:
    """The PostgreSQL processes that serve one ``application_name`` (``clients``), and the
    server's own (``server``: WAL writer, checkpointer, autovacuum, ...), not the backends of
    other clients (the machine's PostgreSQL is shared). Read from pg_stat_activity."""

    def __init__(self, server: str, application_name: str) -> None:
        import psycopg

        self._conn = psycopg.connect(server, autocommit=True)
        self._name = application_name
        self._lock = threading.Lock()

    def _pids(self, clients: bool) -> list[int]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT pid, backend_type = 'client backend' AND application_name = %s "
                "FROM pg_stat_activity WHERE backend_type = 'client backend' "
                "AND application_name = %s OR backend_type <> 'client backend'",
                [self._name, self._name],
            ).fetchall()
        return [pid for pid, theirs in rows if theirs == clients]

    def clients(self) -> list[int]:
        return self._pids(True)

    def server(self) -> list[int]:
        return self._pids(False)

    def close(self) -> None:
        self._conn.close()


class CPUMeter:
    def __init__(self, groups: dict[str, Callable[[], list[int]]], interval: float = 0.1) -> None:
        self.groups = groups
        self.interval = interval
        self._first: dict[str, dict[int, float]] = {g: {} for g in groups}
        self._last: dict[str, dict[int, float]] = {g: {} for g in groups}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.wall = 0.0
        self.machine = 0.0

    def _sample(self) -> None:
        for group, pids in self.groups.items():
            for pid in pids():
                used = _cpu(pid)
                if used is not None:
                    self._first[group].setdefault(pid, used)
                    self._last[group][pid] = used

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def start(self) -> CPUMeter:
        self._sample()
        self._started = time.perf_counter()
        self._machine0 = _machine()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._sample()
        self.wall = time.perf_counter() - self._started
        self.machine = _machine() - self._machine0
        self._stop.set()
        self._thread.join()

    def seconds(self) -> dict[str, float]:
        return {
            group: sum(last - self._first[group][pid] for pid, last in self._last[group].items())
            for group in self.groups
        }

    def summary(self, messages: int) -> str:
        """``group s (µs a message, % of the cores)`` for each group, then the machine."""
        cores = os.cpu_count() or 1
        parts = []
        used = self.seconds()
        for group, seconds in used.items():
            parts.append(
                f"{group} {seconds:.1f} s ({seconds / messages * 1e6:.0f} µs a message, "
                f"{seconds / self.wall / cores:.0%})"
            )
        other = self.machine - sum(used.values())
        parts.append(
            f"machine {self.machine / self.wall / cores:.0%} busy (other processes "
            f"{max(0.0, other) / self.wall / cores:.0%})"
        )
        return "; ".join(parts)
