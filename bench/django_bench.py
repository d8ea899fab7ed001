"""Django benchmark: a Django project's send_messages() through mailout.django vs Django's smtp.

Run ``bench/setup.sh`` once (bench/.venv: Python 3.12 with the newest Django), then::

    bench/.venv/bin/python bench/django_bench.py            # the full run (about 2 minutes)
    bench/.venv/bin/python bench/django_bench.py --quick    # a smoke run

A configured Django project (``mailout.django`` installed) sends Django
``EmailMultiAlternatives`` (~2 KB of text and ~2.5 KB of HTML, the shipping notice of
bench/smtp_bench.py), built inside the timed region, with ``get_connection().send_messages()``:
``EMAIL_BACKEND`` is Django's own smtp backend (the baseline) or ``mailout.django.EmailBackend``
(one connection, and its default pool of 4), the ``EMAIL_*`` settings pointing at the repo's
loopback sink (tests/servers/sink.py, its own process) with a modelled round trip of 5 ms and
0 ms. After each run the sink's own count must have grown by exactly the messages sent.
mailout's fast-path counters are printed too: every message should take the fast path.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import django
import smtp_bench as bench
from django.conf import settings
from django.test.utils import override_settings

from mailout import wire

DJANGO_SMTP = "django.core.mail.backends.smtp.EmailBackend"
MAILOUT = "mailout.django.EmailBackend"
BASELINE = "Django smtp backend"


def send(server: bench.Server, specs: list[bench.Spec], backend: str, **extra: Any) -> None:
    """What a Django project does: build its messages, get_connection().send_messages()."""
    from django.core.mail import get_connection

    with override_settings(
        EMAIL_BACKEND=backend, EMAIL_HOST=server.host, EMAIL_PORT=server.port, **extra
    ):
        messages = [bench.django_message(spec) for spec in specs]
        sent = get_connection().send_messages(messages)
    if sent != len(messages):
        raise RuntimeError(f"{backend} sent {sent} of {len(messages)}")


CONTESTANTS = [
    bench.Contestant("user", BASELINE, lambda s, m: send(s, m, DJANGO_SMTP), baseline=True),
    bench.Contestant(
        "user", "mailout.django, pool_size=1", lambda s, m: send(s, m, MAILOUT, EMAIL_POOL_SIZE=1)
    ),
    bench.Contestant("user", "mailout.django, default pool (4)", lambda s, m: send(s, m, MAILOUT)),
]
TARGETS = {5.0: 30, 0.0: 8}  # ratio to Django's smtp backend, from the brief


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="a fast smoke run")
    parser.add_argument("--seconds", type=float, help="target seconds per measurement")
    parser.add_argument("--repeat", type=int, help="measured runs per cell; the best is kept")
    parser.add_argument("--delays", default="5,0", help="sink reply delays in ms (default 5,0)")
    parser.add_argument("--min-messages", type=int, default=10)
    parser.add_argument("--max-messages", type=int, default=100_000)
    args = parser.parse_args(argv)
    args.seconds = args.seconds or (0.3 if args.quick else 3.0)
    args.repeat = args.repeat or (1 if args.quick else 2)
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    command = " ".join(["bench/.venv/bin/python", "bench/django_bench.py", *sys.argv[1:]])
    # Django 6.1 deprecates get_connection() and the EMAIL_* settings (MAILERS replaces them);
    # this measures what projects run today, so its warnings are not the subject here.
    warnings.filterwarnings("ignore", module="django")
    warnings.filterwarnings("ignore", message=r".*(get_connection|EMAIL_\w+ setting)")
    settings.configure(
        INSTALLED_APPS=["mailout.django"],
        EMAIL_BACKEND=DJANGO_SMTP,
        EMAIL_TIMEOUT=30,
        DEFAULT_FROM_EMAIL=bench.SENDER,
        USE_TZ=True,
    )
    django.setup()
    scenario = bench.make_scenario("html", None)
    results: list[bench.Result] = []
    for delay in (float(d) for d in args.delays.split(",") if d):
        server = bench.ReposSink(delay)
        try:
            for contestant in CONTESTANTS:
                wire.stats.reset()
                result = bench.measure(server, contestant, scenario, args)
                results.append(result)
                print(
                    f"{delay:g} ms {contestant.name:<36} {result.messages:>7} msgs "
                    f"{result.seconds:6.2f} s {result.rate:>9,.0f} msg/s  "
                    f"(fast path {wire.stats.fast}, fallbacks {wire.stats.fallbacks})",
                    file=sys.stderr,
                    flush=True,
                )
                if contestant.name != BASELINE and wire.stats.fallbacks:
                    raise SystemExit(f"fallbacks: {dict(wire.stats.reasons)}")
        finally:
            server.close()

    print(f"Command: `{command}`\n")
    print("\n".join(bench.machine_info()[:2]))
    print(f"- mailout {version('mailout')}, Django {django.get_version()}")
    print()
    delays = sorted({r.delay_ms for r in results}, reverse=True)
    print("| contestant | " + " | ".join(f"{d:g} ms RTT" for d in delays) + " |")
    print("| --- |" + " ---: |" * len(delays))
    for contestant in CONTESTANTS:
        cells = []
        for delay in delays:
            r = next(x for x in results if x.delay_ms == delay and x.contestant is contestant)
            base = next(x for x in results if x.delay_ms == delay and x.contestant.baseline)
            ratio = "" if contestant.baseline else f" ({r.rate / base.rate:.1f}x)"
            cells.append(f"{r.rate:,.0f}{ratio}")
        print(f"| {contestant.name} | " + " | ".join(cells) + " |")
    print()
    for delay in delays:
        base = next(x for x in results if x.delay_ms == delay and x.contestant.baseline)
        best = max((x for x in results if x.delay_ms == delay), key=lambda x: x.rate)
        target = TARGETS.get(delay)
        if target is not None:
            ratio = best.rate / base.rate
            verdict = "met" if ratio >= target else "NOT met"
            print(f"- {delay:g} ms: {best.contestant.name} {ratio:.1f}x Django, target >= "
                  f"{target}x: **{verdict}**")  # fmt: skip


if __name__ == "__main__":
    main()
