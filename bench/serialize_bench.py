"""Build + serialise benchmark: mailout's fast path vs its stdlib path (vs Django when present).

    .venv/bin/python bench/serialize_bench.py            # re-runs itself in bench/.venv if
    bench/.venv/bin/python bench/serialize_bench.py      # Django is only installed there

Five scenarios, each timed as "build the message object, then turn it into bytes":
(a) a text (~2 KB) + HTML (~2.5 KB) message; (b) the same plus a 50 KB PDF attachment;
(c) the same 50 KB attachment (the same bytes object) sent to many recipients, one message each;
(d) and (e): the shipping notice of ``bench/workloads.py`` (the message of smtp_bench.py and
cpu_budget.py, whose text and HTML have lines over 78 characters: quoted-printable), alone and
with a distinct 50 KB PDF each (issue 12's build targets).
Results go to the README; nothing here is asserted in tests.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BENCH_PYTHON = HERE / ".venv" / "bin" / "python"

TEXT = "\n".join(
    f"Line {n}: Hello Ann, your order #{1000 + n} has shipped and will arrive soon."
    for n in range(28)
)  # ~2 KB, lines under 78 characters: 7bit
HTML = (
    '<html><body><table style="width:100%;font-family:Arial,sans-serif;color:#333">\n'
    + "".join(
        f'<tr><td class="item">Item {n}</td><td class="price">€{n}.99</td></tr>\n'
        for n in range(32)
    )
    + "</table></body></html>\n"
)  # ~2.5 KB with a non-ASCII character: 8bit
PDF = random.Random(0).randbytes(50 * 1024)
SUBJECT = "Your order has shipped"
SENDER = "Shop <shop@example.com>"


def _mailout(fast: bool) -> Callable[[str, bytes | None], bytes]:
    import mailout
    from mailout import wire
    from mailout.wireform import serialize

    def build(to: str, attachment: bytes | None) -> bytes:
        msg = mailout.EmailMultiAlternatives(SUBJECT, TEXT, SENDER, [to])
        msg.attach_alternative(HTML, "text/html")
        if attachment is not None:
            msg.attach("invoice.pdf", attachment, "application/pdf")
        if fast:
            return wire.render(msg)
        return serialize(msg.message())

    return build


def _notice(how: str) -> Callable[[str, bytes | None], bytes]:
    """The shipping notice of bench/workloads.py (message n from the recipient's name), built
    and serialised by Django, mailout's stdlib path or its fast path."""
    sys.path.insert(0, str(HERE.parent))
    from bench.workloads import django_message, mailout_message, make_spec
    from mailout import wire
    from mailout.wireform import serialize

    specs: dict[int, Any] = {}  # the texts are made once, outside the timed region

    def build(to: str, attachment: bytes | None) -> bytes:
        n = int(to.removeprefix("user").partition("@")[0])
        spec = specs.get(n) or specs.setdefault(n, make_spec(n, None))
        if attachment is not None:
            spec = dataclasses.replace(
                spec, attachment=(f"invoice-{n}.pdf", attachment, "application/pdf")
            )
        if how == "django":
            return django_message(spec).message().as_bytes()  # type: ignore[no-any-return]
        message = mailout_message(spec)
        return wire.render(message) if how == "fast" else serialize(message.message())

    return build


def _django() -> Callable[[str, bytes | None], bytes] | None:
    try:
        import django
        from django.conf import settings
    except ImportError:
        return None
    if not settings.configured:
        settings.configure(EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend")
        django.setup()
    from django.core.mail import EmailMultiAlternatives

    def build(to: str, attachment: bytes | None) -> bytes:
        msg = EmailMultiAlternatives(SUBJECT, TEXT, SENDER, [to])
        msg.attach_alternative(HTML, "text/html")
        if attachment is not None:
            msg.attach("invoice.pdf", attachment, "application/pdf")
        return msg.message().as_bytes()

    return build


CLOCKS: dict[str, Callable[[], float]] = {"cpu": time.process_time, "wall": time.perf_counter}


def _instructions(
    func: Callable[[str, bytes | None], bytes], shared: bool, attach: bool, n: int, where: str
) -> float:
    """Inside callgrind: one warm-up build, then ``n`` between zeroed and dumped counters."""
    from bench.cpu_budget import Markers

    markers = Markers(os.environ["MAILOUT_BENCH_MARKERS"])
    contents = [i.to_bytes(4, "big") + PDF[4:] for i in range(n)] if attach and not shared else []
    func("user0@example.com", PDF if attach else None)
    markers.zero()
    for i in range(n):
        content = (PDF if shared else contents[i]) if attach else None
        func(f"user{i}@example.com", content)
    markers.dump(where)
    return 0.0


def _callgrind(n: int) -> dict[str, float]:
    """Instructions a message of every cell (by "scenario|contestant"), from one run of this
    script under ``valgrind --tool=callgrind``: counts do not drift with the machine's load."""
    import subprocess
    import tempfile

    from bench.cpu_budget import _DUMP_NAME, _TOTALS, build_helper

    counts: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "cg.out"
        env = {**os.environ, "MAILOUT_BENCH_MARKERS": str(build_helper(Path(folder)))}
        command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
        command += ["--collect-atstart=yes", sys.executable, __file__, "-n", str(n)]
        subprocess.run([*command, "--clock", "inside"], check=True, env=env, capture_output=True)
        for dump in Path(folder).glob("cg.out*"):
            text = dump.read_text(errors="replace")
            name, total = _DUMP_NAME.search(text), _TOTALS.search(text)
            if name is not None and total is not None and "|" in name[1]:
                counts[name[1]] = float(total[1]) / n
    if not counts:
        raise SystemExit("callgrind: no counts (is valgrind installed?)")
    return counts


def _time(
    func: Callable[[str, bytes | None], bytes],
    shared: bool,
    attach: bool,
    n: int,
    clock: Callable[[], float] = time.process_time,
) -> float:
    """Best of 5 runs, in µs per message (the first run also warms up)."""
    contents = [i.to_bytes(4, "big") + PDF[4:] for i in range(n)] if attach and not shared else []
    best = float("inf")
    for _ in range(5):
        started = clock()
        for i in range(n):
            # (b): a distinct 50 KB object per message; (c): the same object every time.
            content = (PDF if shared else contents[i]) if attach else None
            func(f"user{i}@example.com", content)
        best = min(best, (clock() - started) / n * 1e6)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=200, help="messages per timed run")
    parser.add_argument("--no-django", action="store_true")
    parser.add_argument(
        "--clock",
        choices=[*sorted(CLOCKS), "instructions", "inside"],
        default="cpu",
        help="cpu: process CPU time (default: steadier on a shared machine, where other work "
        "takes the cores); wall: elapsed time; instructions: counted by valgrind's callgrind "
        "(k instructions a message, one run: they do not drift with the machine's load)",
    )
    args = parser.parse_args()
    sys.path.insert(0, str(HERE.parent))
    django_build = None if args.no_django else _django()
    here = Path(sys.executable).resolve()
    # bench/.venv has the newest Django (6.x needs Python 3.12); the test venv's Django 5.2 uses
    # the older, faster MIME classes, so prefer the newest whenever bench/setup.sh was run.
    if not args.no_django and BENCH_PYTHON.exists() and here != BENCH_PYTHON.resolve():
        os.execv(str(BENCH_PYTHON), [str(BENCH_PYTHON), __file__, *sys.argv[1:]])
    from mailout import wire

    runners = {"mailout stdlib path": _mailout(False), "mailout fast path": _mailout(True)}
    notices = {"mailout stdlib path": _notice("stdlib"), "mailout fast path": _notice("fast")}
    if django_build is not None:
        runners = {"Django": django_build, **runners}
        notices = {"Django": _notice("django"), **notices}
    scenarios = {
        "(a) text + HTML": (False, False, runners),
        "(b) + 50 KB attachment": (True, False, runners),
        "(c) same 50 KB attachment, many recipients": (True, True, runners),
        "(d) shipping notice, text + HTML (QP)": (False, False, notices),
        "(e) shipping notice + 50 KB attachment": (True, False, notices),
    }
    results: dict[str, dict[str, float]] = {}
    counts = _callgrind(args.n) if args.clock == "instructions" else {}
    for scenario, (attach, shared, chosen) in scenarios.items():
        if args.clock == "inside":
            for name, run in chosen.items():
                _instructions(run, shared, attach, args.n, f"{scenario}|{name}")
            continue
        if counts:
            results[scenario] = {name: counts[f"{scenario}|{name}"] / 1000 for name in chosen}
            continue
        results[scenario] = {
            name: _time(run, shared, attach, args.n, CLOCKS[args.clock])
            for name, run in chosen.items()
        }
    if args.clock == "inside":
        return
    cols = list(runners)
    unit = "k instr/msg" if counts else "µs/msg"
    head = "| scenario | " + " | ".join(f"{c} ({unit})" for c in cols)
    speedups = ["vs stdlib path"] + (["vs Django"] if django_build else [])
    print(head + " | fast " + " | fast ".join(speedups) + " |")
    print("|" + "---|" * (1 + len(cols) + len(speedups)))
    for scenario, row in results.items():
        fast = row["mailout fast path"]
        cells = [f"{row[c]:.0f}" for c in cols]
        ratios = [f"{row['mailout stdlib path'] / fast:.1f}x"]
        if django_build:
            ratios.append(f"{row['Django'] / fast:.1f}x")
        print(f"| {scenario} | " + " | ".join(cells + ratios) + " |")
    print()
    django_note = "not installed (run bench/setup.sh)" if django_build is None else ""
    if django_build is not None:
        import django

        django_note = django.get_version()
    print(
        f"Python {platform.python_version()}, Django {django_note}, n={args.n}, "
        + ("instructions (callgrind, one run); " if counts else f"best of 5, {args.clock} time; ")
        + f"fast path stats: fast={wire.stats.fast} fallbacks={wire.stats.fallbacks} "
        f"{dict(wire.stats.reasons)}"
    )
    print(
        f"command: {Path(sys.executable).name} bench/serialize_bench.py -n {args.n} "
        f"--clock {args.clock}"
    )


if __name__ == "__main__":
    main()
