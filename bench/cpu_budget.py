"""The CPU budget of the user path, stage by stage: µs of process CPU and instructions a message.

    bench/.venv/bin/python bench/cpu_budget.py                  # CPU time, 2 000 messages a stage
    bench/.venv/bin/python bench/cpu_budget.py --callgrind      # and instruction counts (valgrind)

For each workload (text only; text + HTML; text + HTML + a 50 KB PDF, the messages of
``bench/workloads.py``) it times, one after the other, what ``get_connection().send_messages()``
does to a message:

1. construct: ``EmailMultiAlternatives(...)`` and ``attach_alternative``/``attach``;
2. envelope: the SMTP envelope the backend computes (sender, recipients, SMTPUTF8); since
   issue 12 this is ``wire.prepare``, which parses every address once for the envelope and the
   header fields alike and writes the header fields (so part of rendering moved here);
3. render: ``mailout.wire`` turning the message into bytes (since issue 12: the bodies, the
   MIME structure and the header block's check, ``Prepared.finish``);
4. client: ``SMTPClient.send_many`` of the rendered bytes on one open connection (commands,
   replies, framing), to the loopback sink (``tests/servers/sink.py``, its own process, 0 ms);
5. pool: what ``SMTPPool.send_many`` adds on top of the client (threads, the shared work list,
   connecting and closing its connections);

and then the whole user path, construct + ``send_messages()`` with default settings, whose
difference from the sum of the stages is shown as "rest" (the backend's own work).

CPU time is ``time.process_time()`` (every thread of this process; the sink is another
process), best of ``--repeat`` runs. Instruction counts come from callgrind: the script runs
itself under ``valgrind --tool=callgrind`` and zeroes/dumps the counters around each stage
through a three-line C helper built with ``cc`` (valgrind's client requests), so they do not
drift with the machine's load the way time does. Nothing here is asserted in tests.
"""

from __future__ import annotations

import argparse
import ctypes
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # for tests.servers.sink and bench.workloads

from tests.servers.sink import SinkServer  # noqa: E402

import mailout  # noqa: E402
from bench.workloads import WORKLOADS, mailout_message, make_specs  # noqa: E402
from mailout.backends import smtp as smtp_backend  # noqa: E402
from mailout.smtp import SMTPClient  # noqa: E402
from mailout.smtp.pool import PoolOptions, SMTPPool  # noqa: E402

STAGES = ("construct", "envelope", "render", "client", "pool")
HOSTNAME = "bench.example.com"

_HELPER_C = r"""
#include <valgrind/callgrind.h>
void mo_zero(void) { CALLGRIND_ZERO_STATS; }
void mo_dump(const char *name) { CALLGRIND_DUMP_STATS_AT(name); }
"""


class Markers:
    """Zero and dump callgrind's counters from Python (no-ops outside callgrind)."""

    def __init__(self, library: str | None) -> None:
        self._lib = ctypes.CDLL(library) if library else None

    def zero(self) -> None:
        if self._lib is not None:
            self._lib.mo_zero()

    def dump(self, name: str) -> None:
        if self._lib is not None:
            self._lib.mo_dump(name.encode())


@dataclass
class Pipeline:
    """One workload's messages as they pass the stages, and the servers they go to."""

    sink: SinkServer
    client: SMTPClient
    specs: list[Any]
    messages: list[mailout.EmailMessage] | None = None
    envelopes: Any = None
    items: list[Any] | None = None

    def construct(self) -> None:
        self.messages = [mailout_message(spec) for spec in self.specs]

    def envelope(self) -> None:
        assert self.messages is not None
        self.envelopes = stage_envelope(self.messages)  # (or what holds them)

    def render(self) -> None:
        assert self.messages is not None
        assert self.envelopes is not None
        self.items = stage_render(self.messages, self.envelopes)

    def send_client(self) -> None:
        assert self.items is not None
        _check(self.client.send_many(self.items))

    def send_pool(self) -> None:
        assert self.items is not None
        pool = SMTPPool(self._make_client, PoolOptions())
        try:
            _check(pool.send_many(self.items))
        finally:
            pool.close()

    def user_path(self) -> None:
        messages = [mailout_message(spec) for spec in self.specs]
        backend = mailout.get_connection(
            "mailout.backends.smtp.EmailBackend", host=self.sink.host, port=self.sink.port
        )
        sent = backend.send_messages(messages)
        if sent != len(messages):
            raise SystemExit(f"send_messages sent {sent} of {len(messages)}")

    def _make_client(self) -> SMTPClient:
        return SMTPClient(self.sink.host, self.sink.port, local_hostname=HOSTNAME)


if hasattr(smtp_backend, "_envelope"):  # before issue 12: envelope, then the whole render

    def stage_envelope(messages: list[Any]) -> list[Any]:
        return [smtp_backend._envelope(m) for m in messages]

    def stage_render(messages: list[Any], envelopes: list[Any]) -> list[Any]:
        return smtp_backend._render(messages, envelopes)  # type: ignore[no-any-return]

else:  # wire.prepare (addresses once, envelope and header fields), then the bodies

    def stage_envelope(messages: list[Any]) -> Any:
        return smtp_backend.EmailBackend()._prepare_batch(messages)

    def stage_render(messages: list[Any], batch: Any) -> list[Any]:
        return batch.items(0, len(batch))  # type: ignore[no-any-return]


def _check(outcomes: list[Any]) -> None:
    errors = [o for o in outcomes if isinstance(o, Exception)]
    if errors:
        raise SystemExit(f"{len(errors)} messages failed, first: {errors[0]!r}")


def run_stages(workload: str, n: int, repeat: int, markers: Markers) -> dict[str, float]:
    """Best-of-``repeat`` CPU seconds of each stage for ``n`` messages (markers around each)."""
    specs = make_specs(workload, n)
    times: dict[str, float] = {}
    with SinkServer(process=True) as sink:
        client = SMTPClient(sink.host, sink.port, local_hostname=HOSTNAME)
        client.connect()
        pipe = Pipeline(sink, client, specs)
        steps: list[tuple[str, Callable[[], None]]] = [
            ("construct", pipe.construct),
            ("envelope", pipe.envelope),
            ("render", pipe.render),
            ("client", pipe.send_client),
            ("pool total", pipe.send_pool),
            ("user path", pipe.user_path),
        ]
        for _ in range(repeat):
            for name, step in steps:
                markers.zero()
                started = time.process_time()
                step()
                elapsed = time.process_time() - started
                markers.dump(f"{workload}:{name}")
                times[name] = min(times.get(name, float("inf")), elapsed)
        client.close()
    return times


def per_message(times: dict[str, float], n: int, scale: float = 1e6) -> dict[str, float]:
    """Stage costs a message; "pool" is what the pool adds to the client, "rest" what the
    user path costs beyond the sum of the stages (the backend's own work)."""
    out = {name: times[name] / n * scale for name in ("construct", "envelope", "render", "client")}
    out["pool"] = (times["pool total"] - times["client"]) / n * scale
    out["user path"] = times["user path"] / n * scale
    out["rest"] = out["user path"] - sum(out[s] for s in STAGES)
    return out


# -- callgrind -------------------------------------------------------------------------------


def build_helper(directory: Path) -> Path:
    if shutil.which("cc") is None or not Path("/usr/include/valgrind/callgrind.h").exists():
        raise SystemExit("--callgrind needs cc and valgrind's headers (valgrind/callgrind.h)")
    source = directory / "markers.c"
    source.write_text(_HELPER_C)
    library = directory / "markers.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-O1", str(source), "-o", str(library)], check=True)
    return library


_DUMP_NAME = re.compile(r"^desc: Trigger: Client Request: (.+)$", re.MULTILINE)
_TOTALS = re.compile(r"^(?:totals|summary): (\d+)", re.MULTILINE)


def callgrind_counts(workload: str, n: int, directory: Path) -> dict[str, float]:
    """Instructions of each stage for ``n`` messages, from a run of this script under
    callgrind (one run: the counters are zeroed and dumped around each stage)."""
    library = build_helper(directory)
    out = directory / f"cg-{workload}.out"
    command = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out}",
        "--collect-atstart=yes",
        sys.executable,
        __file__,
        "--inside-callgrind",
        str(library),
        "--workloads",
        workload,
        "-n",
        str(n),
        "--repeat",
        "1",
    ]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    counts: dict[str, float] = {}
    for dump in directory.glob(f"cg-{workload}.out*"):
        text = dump.read_text(errors="replace")
        name, total = _DUMP_NAME.search(text), _TOTALS.search(text)
        if name is not None and total is not None and name[1].startswith(f"{workload}:"):
            counts[name[1].split(":", 1)[1]] = float(total[1])
    missing = {"construct", "envelope", "render", "client", "pool total", "user path"} - set(counts)
    if missing:
        raise SystemExit(f"callgrind: no dump for {sorted(missing)} of {workload}")
    return counts


# -- main ------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2000, help="messages a stage (CPU time)")
    parser.add_argument("--repeat", type=int, default=3, help="runs a stage; the best is kept")
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--callgrind", action="store_true", help="also count instructions")
    parser.add_argument("--callgrind-n", type=int, default=200, help="messages under callgrind")
    parser.add_argument("--inside-callgrind", metavar="HELPER", help=argparse.SUPPRESS)
    args = parser.parse_args()
    workloads = args.workloads.split(",")
    if args.inside_callgrind:
        for workload in workloads:
            run_stages(workload, args.n, 1, Markers(args.inside_callgrind))
        return

    columns = [*STAGES, "rest", "user path"]
    cpu = {
        w: per_message(run_stages(w, args.n, args.repeat, Markers(None)), args.n) for w in workloads
    }
    instructions: dict[str, dict[str, float]] = {}
    if args.callgrind:
        with tempfile.TemporaryDirectory() as tmp:
            for w in workloads:
                counts = callgrind_counts(w, args.callgrind_n, Path(tmp))
                instructions[w] = per_message(counts, args.callgrind_n, scale=1e-3)

    command = " ".join(["bench/.venv/bin/python", "bench/cpu_budget.py", *sys.argv[1:]])
    print(f"Command: `{command}`  ")
    print(
        f"Python {platform.python_version()}, n={args.n} messages a stage, best of {args.repeat}"
        + (f"; instructions: callgrind, n={args.callgrind_n}" if args.callgrind else "")
    )
    print()
    print("| workload | unit | " + " | ".join(columns) + " |")
    print("| --- | --- | " + " | ".join("---:" for _ in columns) + " |")
    for w in workloads:
        print(f"| {w} | µs CPU | " + " | ".join(f"{cpu[w][c]:.1f}" for c in columns) + " |")
        if w in instructions:
            print(
                f"| {w} | k instr | "
                + " | ".join(f"{instructions[w][c]:.0f}" for c in columns)
                + " |"
            )


if __name__ == "__main__":
    main()
