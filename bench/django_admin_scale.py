"""The queue in Django's admin at 10^6 messages: the list, its filters, search, a message's page.

    .venv/bin/python bench/django_admin_scale.py                     # SQLite and PostgreSQL
    .venv/bin/python bench/django_admin_scale.py --db sqlite --messages 100000

A Django project whose queue lives in its own database (``EMAIL_QUEUE_URL = "django"``; a new
SQLite file, or a new schema on the PostgreSQL at ``--server``, dropped afterwards) is migrated
by Django, then filled by set-based SQL (``INSERT ... SELECT`` over a generated series; one
message row, one body of ~400 bytes and, for mail attempted, one event each), in the mix of a
queue that keeps its history: 90% sent, 5% failed, 3% deferred, 1% queued, 1% held; mailers
``default`` (80%), ``bulk`` (20%) and a rare ``transactional`` (0.1%); 2% high priority.
Then each admin page is fetched through Django's test client as a superuser: one warm-up,
then the median of ``--runs``, with the number of SQL queries each ran and whether any counted
rows (none should: the list never counts). Numbers go to README ("Using mailout in Django").
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

SERVER = os.environ.get("MAILOUT_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
T0 = 1_790_000_000.0
BODY = (
    "From: Shop <shop@example.com>\r\nTo: user@example.com\r\nSubject: Order shipped\r\n"
    "Date: Sat, 05 Dec 2026 18:00:00 +0000\r\nMessage-ID: <1@shop.example.com>\r\n"
    "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: 7bit\r\n\r\n" + "Your order is on its way. " * 8 + "\r\n"
)

# One generated row per message: n from 1 to N. Expressions shared by both engines.
STATE = (
    "CASE WHEN n % 100 = 0 THEN 'queued' WHEN n % 100 = 1 THEN 'held' "
    "WHEN n % 100 IN (2, 3, 4) THEN 'deferred' WHEN n % 100 BETWEEN 5 AND 9 THEN 'failed' "
    "ELSE 'sent' END"
)
MAILER = "CASE WHEN n % 1000 = 7 THEN 'transactional' WHEN n % 5 = 0 THEN 'bulk' ELSE 'default' END"
PRIORITY = "CASE WHEN n % 50 = 3 THEN 0 WHEN n % 10 = 1 THEN 2 ELSE 1 END"
COLUMNS = (
    "id, state, mailer, priority, sender, recipients, pending, domain, message_id, subject, "
    "size, metadata, created_at, queued_at, due_at, updated_at, attempts, delivered, last_reply"
)


def values(concat: str) -> str:
    """The SELECT list of one generated message (``concat``: the engine's text concatenation
    of n, as a function of one SQL expression)."""
    addr = concat("'user' || n || '@example' || (n % 100) || '.com'")
    return (
        f"n, {STATE}, {MAILER}, {PRIORITY}, 'shop@example.com', "
        f"'[\"' || {addr} || '\"]', "
        f"CASE WHEN n % 100 < 10 THEN '[\"' || {addr} || '\"]' ELSE '[]' END, "
        f"'example' || (n % 100) || '.com', '<' || n || '@shop.example.com>', "
        f"'Order ' || n || ' shipped', 400, '{{}}', {T0} + n, {T0} + n, {T0} + n + 600, "
        f"{T0} + n + 60, CASE WHEN n % 100 < 2 THEN 0 ELSE 1 END, "
        f"CASE WHEN n % 100 >= 10 THEN 1 ELSE 0 END, "
        f"CASE WHEN n % 100 >= 2 THEN '250 2.0.0 queued' ELSE NULL END"
    )


EVENTS = (
    "INSERT INTO mailout_queue_event (message, at, attempt, kind, recipient, code, enhanced, "
    "text, relay_id) SELECT id, updated_at, 1, "
    "CASE WHEN state = 'failed' THEN 'failed' WHEN state = 'deferred' THEN 'deferred' "
    "ELSE 'sent' END, substr(recipients, 3, length(recipients) - 4), "
    "CASE WHEN state = 'failed' THEN 550 WHEN state = 'deferred' THEN 451 ELSE 250 END, "
    "CASE WHEN state = 'failed' THEN '5.1.1' WHEN state = 'deferred' THEN '4.7.1' "
    "ELSE '2.0.0' END, 'reply', 'Q' || id FROM mailout_queue_message WHERE attempts > 0"
)


def fill_sqlite(connection: Any, count: int) -> None:
    raw = connection.connection
    series = f"WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {count})"
    raw.execute("BEGIN")
    raw.execute(
        f"{series} INSERT INTO mailout_queue_message ({COLUMNS}) "
        f"SELECT {values(lambda e: e)} FROM s"
    )
    raw.execute(
        "INSERT INTO mailout_queue_body (message, data) SELECT id, CAST(? AS BLOB) "
        "FROM mailout_queue_message",
        [BODY.encode()],
    )
    raw.execute(EVENTS)
    raw.execute("COMMIT")


def fill_postgres(connection: Any, count: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO mailout_queue_message ({COLUMNS}) "
            f"SELECT {values(lambda e: e)} FROM generate_series(1, {count}) AS n"
        )
        cursor.execute(
            "INSERT INTO mailout_queue_body (message, data) SELECT id, convert_to(%s, 'UTF8') "
            "FROM mailout_queue_message",
            [BODY],
        )
        cursor.execute(EVENTS)
        cursor.execute("ANALYZE")  # what autovacuum does soon after a bulk load


def configure(db: str, where: str) -> None:
    import django
    from django.conf import settings

    if db == "sqlite":
        database: dict[str, Any] = {"ENGINE": "django.db.backends.sqlite3", "NAME": where}
    else:
        from urllib.parse import unquote, urlsplit

        parts = urlsplit(SERVER)
        database = {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parts.path.lstrip("/")) or "test",
            "USER": unquote(parts.username or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
            "OPTIONS": {"options": f"-c search_path={where}"},
        }
    settings.configure(
        SECRET_KEY="bench",
        ALLOWED_HOSTS=["testserver"],
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=[
            "mailout.django",
            "django.contrib.admin",
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.messages",
        ],
        MIDDLEWARE=[
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
            "django.contrib.messages.middleware.MessageMiddleware",
        ],
        SESSION_ENGINE="django.contrib.sessions.backends.signed_cookies",
        TEMPLATES=[
            {
                "BACKEND": "django.template.backends.django.DjangoTemplates",
                "APP_DIRS": True,
                "OPTIONS": {
                    "context_processors": [
                        "django.template.context_processors.request",
                        "django.contrib.auth.context_processors.auth",
                        "django.contrib.messages.context_processors.messages",
                    ]
                },
            }
        ],
        DATABASES={"default": database},
        EMAIL_QUEUE_URL="django",
        USE_TZ=True,
    )
    django.setup()


urlpatterns: list[Any] = []

PAGES = [
    ("list, page 1", ""),
    ("list, page 50", "?p=50"),
    ("state = failed (5%)", "?state__exact=failed"),
    ("state = held (1%)", "?state__exact=held"),
    ("mailer = bulk (20%)", "?mailer=bulk"),
    ("mailer = transactional (0.1%)", "?mailer=transactional"),
    ("mailer = unused (no message)", "?mailer=unused"),
    ("priority = high (2%)", "?priority__exact=0"),
    ("search, 1% match (example42.com)", "?q=example42.com"),
    ("search, one match (user999999@)", "?q=user999999%40"),
    ("search, no match", "?q=no+such+thing"),
    ("search by id", "?q=777777"),
]


def run_pages(count: int, runs: int) -> list[tuple[str, float, int, bool]]:
    from django.contrib import admin
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import path

    urlpatterns.append(path("admin/", admin.site.urls))
    user = User.objects.create_superuser("bench", "bench@example.com", "x")
    client = Client()
    client.force_login(user)
    base = "/admin/mailout/queuedmessage/"
    pages = [*PAGES, ("a message's page", f"{count // 2 + 5}/change/")]
    results = []
    for name, query in pages:
        url = base + query
        assert client.get(url).status_code == 200, url  # warm-up
        times = []
        for _ in range(runs):
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                response = client.get(url)
                times.append(time.perf_counter() - started)
            assert response.status_code == 200, url
        counted = any("COUNT(" in q["sql"].upper() for q in queries.captured_queries)
        n = len(queries.captured_queries)
        results.append((name, statistics.median(times), n, counted))
    return results


def counts(runs: int) -> list[tuple[str, float]]:
    """For comparison: the counts Django's changelist runs by default (the whole table, and
    the filtered list), which this admin never runs."""
    from django.db import connection

    results = []
    for name, where in [
        ("COUNT(*) of the table", ""),
        ("COUNT(*) of state = failed", " WHERE state = 'failed'"),
    ]:
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            with connection.cursor() as cursor:
                cursor.execute(f"SELECT COUNT(*) FROM mailout_queue_message{where}")
                cursor.fetchone()
            times.append(time.perf_counter() - started)
        results.append((name, statistics.median(times)))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql"), required=True)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    schema = f"mailout_admin_bench_{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as tmp:
        if args.db == "postgresql":
            import psycopg

            with psycopg.connect(SERVER, autocommit=True) as conn:
                conn.execute(f'CREATE SCHEMA "{schema}"')
        try:
            configure(
                args.db, str(Path(tmp) / "project.sqlite3") if args.db == "sqlite" else schema
            )
            from django.core.management import call_command
            from django.db import connection

            call_command("migrate", verbosity=0)
            started = time.perf_counter()
            (fill_sqlite if args.db == "sqlite" else fill_postgres)(connection, args.messages)
            filled = time.perf_counter() - started
            print(f"{args.db}: {args.messages:,} messages filled in {filled:.1f} s")
            for name, seconds, queries, counted in run_pages(args.messages, args.runs):
                note = " COUNTED ROWS" if counted else ""
                print(f"  {name:36} {seconds * 1000:7.1f} ms  {queries} queries{note}")
            for name, seconds in counts(args.runs):
                print(f"  {name:36} {seconds * 1000:7.1f} ms  (what the list does not run)")
            connection.close()
        finally:
            if args.db == "postgresql":
                with psycopg.connect(SERVER, autocommit=True) as conn:
                    conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


if __name__ == "__main__":
    main()
