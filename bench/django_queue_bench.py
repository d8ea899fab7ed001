"""How fast a Django project enqueues through mailout.django.QueueBackend.

    .venv/bin/python scripts/django_newest.py --prepare    # prints the venv's python
    PYTHONPATH=src:. ~/.cache/mailout/django-newest-venv-*/bin/python bench/django_queue_bench.py
    .venv/bin/python bench/django_queue_bench.py --quick   # a smoke run (Django 5.2)

Under the newest Django (scripts/django_newest.py's venv: Django 6.1 and psycopg) every
message takes mailout's fast path; under Django 5.2 the workload's text parts, which do not
end with a line break, go through Django's own serialisation (see "Using mailout in Django").

A configured Django project (``mailout.django`` installed, ``EMAIL_BACKEND =
"mailout.django.QueueBackend"``) stores the shipping notice of bench/workloads.py (~2 KB of
text, ~2.5 KB of HTML, a Django ``EmailMultiAlternatives`` built inside the timed region) in
the queue, two ways:

* **view loop**: one message per ``send_mail``-style call (``EmailMultiAlternatives.send()``),
  each inside its own ``transaction.atomic()`` with one row of the "order" the view saves,
  as a request that saves an order and mails its receipt does;
* **batched**: ``get_connection().send_messages()`` of 100 messages inside one transaction.

The queue is ``EMAIL_QUEUE_URL = "django"`` (the project's own database, Django's connection
and transaction) on SQLite (a file in a temporary directory, WAL, ``synchronous`` FULL: every
commit fsynced) and on PostgreSQL (``MAILOUT_TEST_POSTGRES``, default the machine's
``postgresql://postgres@127.0.0.1:5432/test``, in a schema of its own, dropped afterwards);
for reference, the same loop into mailout's own SQLite queue file (``sqlite:///``: its own
connection, outside Django's transaction). Every run checks the rows stored.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

import django
import workloads
from django.conf import settings

SERVER = os.environ.get("MAILOUT_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
BATCH = 100


def databases(folder: str, schema: str) -> dict[str, Any]:
    parts = urlsplit(SERVER)
    return {
        "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": f"{folder}/site.sqlite3"},
        "pg": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parts.path.lstrip("/")) or "test",
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
            "OPTIONS": {"options": f"-c search_path={schema}"},
        },
    }


def order_table(alias: str) -> None:
    from django.db import connections

    with connections[alias].cursor() as cursor:
        cursor.execute("CREATE TABLE shop_order (id INTEGER PRIMARY KEY, total INTEGER)")


def stored(alias: str) -> int:
    from django.db import connections

    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT count(*) FROM mailout_queue_message")
        return int(cursor.fetchone()[0])


def view_loop(alias: str, url: str, specs: list[workloads.Spec], start: int) -> None:
    """One request per message: save the order, mail its receipt, commit."""
    from django.core.mail import get_connection
    from django.db import connections, transaction

    backend = get_connection("mailout.django.QueueBackend", url=url)
    for n, spec in enumerate(specs, start):
        with transaction.atomic(using=alias):
            with connections[alias].cursor() as cursor:
                cursor.execute("INSERT INTO shop_order (id, total) VALUES (%s, %s)", [n, 10])
            message = workloads.django_message(spec)
            message.connection = backend
            if message.send() != 1:
                raise RuntimeError("not stored")


def batched(alias: str, url: str, specs: list[workloads.Spec], start: int) -> None:
    from django.core.mail import get_connection
    from django.db import transaction

    backend = get_connection("mailout.django.QueueBackend", url=url)
    for i in range(0, len(specs), BATCH):
        with transaction.atomic(using=alias):
            messages = [workloads.django_message(spec) for spec in specs[i : i + BATCH]]
            if backend.send_messages(messages) != len(messages):
                raise RuntimeError("not all stored")


def measure(
    run: Callable[[str, str, list[workloads.Spec], int], None],
    alias: str,
    url: str,
    count: int,
    counted: Callable[[], int],
    offset: list[int],
) -> float:
    specs = [workloads.make_spec(i, None) for i in range(count)]
    before = counted()
    started = time.perf_counter()
    run(alias, url, specs, offset[0])
    seconds = time.perf_counter() - started
    offset[0] += count
    if counted() - before != count:
        raise RuntimeError(f"{url}: stored {counted() - before} of {count}")
    return count / seconds


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="a fast smoke run")
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args(argv)
    singles, batch = (200, 1000) if args.quick else (2000, 10_000)
    command = " ".join(["python", "bench/django_queue_bench.py", *sys.argv[1:]])

    import psycopg

    schema = f"mailout_djqueue_bench_{uuid.uuid4().hex[:8]}"
    admin = psycopg.connect(SERVER, autocommit=True)
    admin.execute(f'CREATE SCHEMA "{schema}"')
    folder = tempfile.mkdtemp(prefix="mailout-django-queue-bench-")
    try:
        settings.configure(
            INSTALLED_APPS=["mailout.django"],
            DATABASES=databases(folder, schema),
            DEFAULT_FROM_EMAIL=workloads.SENDER,
            USE_TZ=True,
            EMAIL_QUEUE_MAILER="mailout.backends.smtp.EmailBackend",
        )
        django.setup()
        from django.core.management import call_command

        from mailout import wire
        from mailout.queue.storage import open_storage

        for alias in ("default", "pg"):
            call_command("migrate", "mailout", database=alias, verbosity=0)
            order_table(alias)
        own_file = f"sqlite:///{folder}/mailout-queue.db"

        def own_count() -> int:
            with open_storage(own_file) as store:
                return sum(store.stats(now=time.time()).counts.values())

        cells = [
            ("SQLite (`django`)", "default", "django", lambda: stored("default")),
            ("PostgreSQL (`django:pg`)", "pg", "django:pg", lambda: stored("pg")),
            ("reference: mailout's own SQLite file (`sqlite:///`)", "default", own_file, own_count),
        ]
        offset = [0]
        rows = []
        for name, alias, url, counted in cells:
            loop = [
                measure(view_loop, alias, url, singles, counted, offset) for _ in range(args.runs)
            ]
            many = [measure(batched, alias, url, batch, counted, offset) for _ in range(args.runs)]
            print(f"{name}: view loop {loop}, batched {many}", file=sys.stderr, flush=True)
            print(f"  fast path {wire.stats.fast}, fallbacks {dict(wire.stats.reasons)}",
                  file=sys.stderr, flush=True)  # fmt: skip
            wire.stats.reset()
            rows.append((name, loop, many))
    finally:
        admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.close()

    print(f"Command: `{command}`\n")
    print(f"- Python {sys.version.split()[0]}, Django {django.get_version()}, "
          f"psycopg {version('psycopg')}, PostgreSQL at {urlsplit(SERVER).hostname}")  # fmt: skip
    print(f"- {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}\n")
    runs = range(1, args.runs + 1)
    head = [f"view loop, run {r}" for r in runs] + [f"batched ({BATCH}), run {r}" for r in runs]
    print("| queue | " + " | ".join(head) + " |")
    print("| --- |" + " ---: |" * len(head))
    for name, loop, many in rows:
        print(f"| {name} | " + " | ".join(f"{rate:,.0f}" for rate in [*loop, *many]) + " |")


if __name__ == "__main__":
    main()
