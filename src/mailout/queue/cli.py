"""``mailout queue …``: run a worker, look at the queue, and operate on it like ``postsuper``."""

from __future__ import annotations

import argparse
import gc
import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from mailout._units import parse_duration, parse_rate
from mailout.queue.api import Queue
from mailout.queue.models import ALL, MessageSummary, Selection, State, iso

__all__ = ["add_parser", "run"]

_SELECTION_HELP = "message ids, '-' to read ids from standard input, or ALL"


def _duration(text: str) -> float:
    try:
        return parse_duration(text, what="duration")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _rate(text: str) -> Any:
    try:
        return parse_rate(text, what="--rate")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, got {value}")
    return value


def add_parser(commands: Any) -> None:
    """Add ``queue`` and its subcommands to the ``mailout`` parser."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", help="the queue's store (default: EMAIL_QUEUE_URL)")
    queue = commands.add_parser(
        "queue",
        help="the durable queue: run a worker, see and operate on queued mail",
        description="The durable queue (EMAIL_QUEUE_URL, default sqlite:///mailout-queue.db).",
    )
    sub = queue.add_subparsers(dest="queue_command", metavar="COMMAND", required=True)

    worker = sub.add_parser("worker", parents=[common], help="deliver queued mail")
    worker.add_argument("--once", action="store_true", help="deliver what is due now, then exit")
    worker.add_argument("--concurrency", type=_positive, help="deliveries in flight at once")
    worker.add_argument(
        "--mailer-concurrency",
        type=_positive,
        help="deliveries of one mailer in flight at once (default: 1 for a mailer with a pool "
        "of connections, --concurrency for one that sends a message at a time)",
    )
    worker.add_argument("--rate", type=_rate, help="rate of every mailer, e.g. 10/s or 600/min")
    worker.add_argument("--batch", type=_positive, help="messages per claim and per delivery")
    worker.add_argument(
        "--lease", type=_duration, help="seconds a claim survives this worker's silence"
    )
    worker.add_argument(
        "--connections",
        type=_positive,
        help="connections in use at once per mailer, across every worker of a shared store",
    )
    worker.add_argument(
        "--poll-interval",
        type=_duration,
        metavar="SECONDS",
        help="longest wait before looking for due mail again (default 1 s)",
    )
    worker.add_argument(
        "--progress",
        choices=("auto", "live", "lines"),
        default="auto",
        help="live view (a terminal with rich installed) or one log line per event",
    )

    sub.add_parser(
        "migrate",
        parents=[common],
        help="create or upgrade the queue's schema (PostgreSQL; safe from several hosts at once)",
    )
    status = sub.add_parser(
        "status", parents=[common], help="counts by state and mailer, workers, failures"
    )
    status.add_argument("--json", action="store_true")
    listing = sub.add_parser("list", parents=[common], help="list messages")
    listing.add_argument("--state", choices=[str(s) for s in State])
    listing.add_argument("--limit", type=_positive, default=50)
    listing.add_argument("--json", action="store_true")
    show = sub.add_parser("show", parents=[common], help="one message with its attempts")
    show.add_argument("id", type=int)
    show.add_argument("--json", action="store_true")
    show.add_argument("--raw", action="store_true", help="print the stored message bytes")

    retry = sub.add_parser("retry", parents=[common], help="deferred: due now; failed: queue again")
    retry.add_argument("ids", nargs="*", metavar="ID", help=_SELECTION_HELP)
    retry.add_argument("--failed", action="store_true", help="every failed message")
    for name, text in (
        ("hold", "put messages aside until released"),
        ("release", "release held messages"),
        ("expire", "fail waiting messages now, as expired"),
    ):
        op = sub.add_parser(name, parents=[common], help=text)
        op.add_argument("ids", nargs="+", metavar="ID", help=_SELECTION_HELP)
    purge = sub.add_parser("purge", parents=[common], help="delete old sent (or failed) mail")
    purge.add_argument("--sent", action="store_true")
    purge.add_argument("--failed", action="store_true")
    purge.add_argument("--older-than", type=_duration, default=7 * 86400.0, metavar="AGE")
    purge.add_argument("--batch", type=_positive, default=1000)
    health = sub.add_parser(
        "healthcheck",
        parents=[common],
        help="exit 0 if the queue is being drained, 1 if not",
    )
    health.add_argument("--max-wait", type=_duration, default=600.0, metavar="SECONDS")
    health.add_argument("--stale", type=_duration, metavar="SECONDS")
    health.add_argument("--json", action="store_true")
    demo = sub.add_parser(
        "demo",
        help="enqueue while the relay is down, watch the worker retry and deliver",
        description="Enqueue a few messages, run a worker against a relay that is down (every "
        "message deferred), start the mail catcher, watch the retry deliver them. Needs: "
        'pip install "mailout[server]"',
    )
    demo.add_argument("--no-wait", action="store_true", help="exit at the end, do not serve")


def selection(tokens: Sequence[str], stdin: TextIO | None = None) -> Selection:
    """``ALL``, or ids from the arguments and (for ``-``) standard input."""
    if list(tokens) == [ALL]:
        return ALL
    ids: list[int] = []
    for token in tokens:
        words = (stdin or sys.stdin).read().split() if token == "-" else [token]
        for word in words:
            if not word.isdigit():
                raise SystemExit(f"mailout queue: {word!r} is not a message id (or ALL, or -)")
            ids.append(int(word))
    return ids


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = sys.stdout if out is None else out
    command = args.queue_command
    if command == "worker":
        return _worker(args)
    if command == "demo":
        from mailout.queue.demo import run_queue_demo

        return run_queue_demo(wait=not args.no_wait)
    if command == "migrate":
        return _migrate(args.url, out)
    queue = Queue(args.url)
    try:
        if command == "status":
            return print_status(queue, args.json, out)
        if command == "list":
            items = queue.list(args.state, limit=args.limit)
            if args.json:
                json.dump([m.as_json() for m in items], out, indent=2)
                out.write("\n")
            else:
                for item in items:
                    out.write(_line(item) + "\n")
            return 0
        if command == "show":
            return print_message(queue, args.id, out, raw=args.raw, as_json=args.json)
        if command == "healthcheck":
            health = queue.healthcheck(max_wait=args.max_wait, stale=args.stale)
            if args.json:
                body = {
                    "ok": health.ok,
                    "reason": health.reason,
                    "live_workers": health.live_workers,
                    "waited": round(health.waited, 3),
                }
                json.dump(body, out)
                out.write("\n")
            else:
                out.write(("ok: " if health.ok else "unhealthy: ") + health.reason + "\n")
            return 0 if health.ok else 1
        if command == "purge":
            states = [s for s, on in ((State.SENT, args.sent), (State.FAILED, args.failed)) if on]
            if not states:
                raise SystemExit("mailout queue purge: say what to purge: --sent and/or --failed")
            count = queue.purge(states, older_than=args.older_than, batch=args.batch)
            out.write(f"purged {count} message(s)\n")
            return 0
        if command == "retry":
            if args.failed == bool(args.ids):
                raise SystemExit("mailout queue retry: give message ids, - or ALL, or --failed")
            count = queue.retry(selection(args.ids) if args.ids else (), failed=args.failed)
            out.write(f"retried {count} message(s)\n")
            return 0
        operation = {"hold": queue.hold, "release": queue.release, "expire": queue.expire}[command]
        count = operation(selection(args.ids))
        done = {"hold": "held", "release": "released", "expire": "expired"}[command]
        out.write(f"{done} {count} message(s)\n")
        return 0
    finally:
        queue.close()


def _worker(args: argparse.Namespace) -> int:
    from mailout.queue.report import choose_reporter, install_log_handler
    from mailout.queue.worker import Worker, WorkerOptions

    options = WorkerOptions.from_settings(
        rate=args.rate,
        batch=args.batch,
        concurrency=args.concurrency,
        mailer_concurrency=args.mailer_concurrency,
        lease=args.lease,
        connections=None if args.connections is None else {"*": args.connections},
        poll_interval=args.poll_interval,
    )
    live = {"auto": None, "live": True, "lines": False}[args.progress]
    reporter = choose_reporter(sys.stderr, live=live)
    install_log_handler(sys.stderr)
    queue = Queue(args.url)
    try:
        worker = Worker(queue.storage, options=options, reporter=reporter)
        # What is loaded by now (modules, settings, the store's pool) lives as long as the
        # process: the cyclic collector need not walk it again on every full collection.
        gc.freeze()
        return worker.run(once=args.once)
    finally:
        queue.close()


def _migrate(url: str | None, out: TextIO) -> int:
    from mailout.queue.storage import Storage, open_storage
    from mailout.queue.storage.postgres import PostgresStorage

    if url is None:
        from mailout.conf import settings

        url = settings.EMAIL_QUEUE_URL
    storage: Storage
    if url.partition(":")[0].lower() == "django":  # the project's database: Django migrates it
        from mailout.django.queue import migrate

        migrate(url, out)
        return 0
    if url.partition(":")[0].lower() in ("postgresql", "postgres"):
        storage = PostgresStorage(url, check_schema=False)
    else:
        storage = open_storage(url)  # SQLite creates (and checks) its schema when opened
    try:
        applied = storage.migrate()
    finally:
        storage.close()
    if applied:
        out.write(
            f"queue {storage.name}: applied schema version(s) {', '.join(map(str, applied))}\n"
        )
    else:
        out.write(f"queue {storage.name}: schema up to date\n")
    return 0


def print_status(queue: Queue, as_json: bool, out: TextIO) -> int:
    stats = queue.status()
    now = queue.clock()
    if as_json:
        json.dump({"store": queue.storage.name, **stats.as_json(now)}, out, indent=2)
        out.write("\n")
        return 0
    out.write(f"queue {queue.storage.name}\n")
    for state in State:
        out.write(f"  {state!s:<9} {stats.counts.get(state, 0):>10,}\n")
    if stats.oldest_due is not None:
        waited = now - stats.oldest_due
        when = f"waiting {_ago(waited)}" if waited >= 0 else f"due in {_ago(-waited)}"
        out.write(f"  earliest due mail: {when}\n")
    if stats.next_retry is not None:
        out.write(f"  next retry: in {_ago(stats.next_retry - now)} ({iso(stats.next_retry)})\n")
    if stats.by_mailer:
        out.write("mailers (mail not done yet):\n")
        for mailer, counts in sorted(stats.by_mailer.items()):
            line = ", ".join(f"{state} {n:,}" for state, n in counts.items() if n)
            out.write(f"  {mailer}: {line}\n")
    if stats.workers:
        out.write("workers:\n")
    for w in stats.workers:
        out.write(
            f"  {w.host} pid {w.pid} ({w.id}): started {iso(w.started_at)}, seen "
            f"{_ago(now - w.seen_at)} ago, {w.in_flight} in flight, sent {w.sent}, "
            f"deferred {w.deferred}, failed {w.failed}\n"
        )
    if not stats.workers:
        out.write("  no worker is running\n")
    if stats.recent_failures:
        out.write("recent failures:\n")
        for m in stats.recent_failures:
            out.write(
                f"  #{m.id} {iso(m.updated_at)} to {', '.join(m.recipients)}: {m.last_reply}\n"
            )
    return 0


def print_message(
    queue: Queue, id: int, out: TextIO, *, raw: bool = False, as_json: bool = False
) -> int:
    detail = queue.show(id)
    if raw:
        if detail.data is None:
            raise SystemExit(
                f"mailout queue show: message {id} has no body (dropped after sending)"
            )
        out.flush()
        sys.stdout.buffer.write(detail.data)
        return 0
    events = [
        {
            "at": iso(e.at),
            "attempt": e.attempt,
            "kind": e.kind,
            "recipient": e.recipient,
            "code": e.code,
            "enhanced": e.enhanced,
            "text": e.text,
            "relay_id": e.relay_id,
        }
        for e in detail.events
    ]
    if as_json:
        body = {**detail.summary.as_json(), "metadata": dict(detail.metadata), "events": events}
        body["lease_owner"], body["lease_until"] = detail.lease_owner, iso(detail.lease_until)
        json.dump(body, out, indent=2)
        out.write("\n")
        return 0
    for key, value in detail.summary.as_json().items():
        out.write(f"{key:<12} {value}\n")
    if detail.metadata:
        out.write(f"{'metadata':<12} {json.dumps(dict(detail.metadata))}\n")
    out.write("attempts:\n")
    for e in events:
        who = e["recipient"] or "-"
        code = " ".join(str(x) for x in (e["code"], e["enhanced"]) if x)
        relay = f" [relay id {e['relay_id']}]" if e["relay_id"] else ""
        out.write(f"  {e['at']} #{e['attempt']} {e['kind']:<9} {who} {code} {e['text']}{relay}\n")
    if detail.data is not None:
        head = detail.data.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
        out.write("headers:\n" + "".join(f"  {line}\n" for line in head.split("\r\n")))
    return 0


def _line(m: MessageSummary) -> str:
    when = iso(m.due_at if m.state in (State.QUEUED, State.DEFERRED) else m.updated_at)
    rcpts = ", ".join(m.recipients[:3]) + (" …" if len(m.recipients) > 3 else "")
    return f"{m.id:>8}  {m.state!s:<8} {m.attempts:>2}  {when}  {rcpts}  {m.subject!r}"


def _ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"
