"""An operator's changes to queued mail from Django (the admin's actions), as mailout does them.

Each operation runs mailout's own named queries (``mailout/queue/sql/<engine>/queries.sql``:
``hold_ids``, ``unhold_ids``, ``expire_ids``, ``retry_ids`` with ``operation_events``, and
``delete_ids``), the very statements behind ``mailout queue hold/release/expire/retry``, on
Django's connection to the queue's database and in a transaction of Django's: every check those
queries make (a message a worker holds under its lease is never touched; only held mail is
released; ...) holds here too. Ids go in chunks, each chunk its own short transaction, so that a
big selection never keeps the workers waiting long.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Final

from django.db import connections, transaction  # type: ignore[import-untyped]

from mailout.exceptions import ImproperlyConfigured

__all__ = ["CHUNK", "OPERATIONS", "delete", "operate", "queue_database"]

#: operation -> (mailout's query name, event kind, event text before " by <who>").
OPERATIONS: Final = {
    "hold": ("hold", "held", "held"),
    "release": ("unhold", "released", "released"),
    "expire": ("expire", "expired", "expired"),
    "retry": ("retry", "retried", "retried"),
}
#: Ids per transaction.
CHUNK: Final = 1000


def queue_database() -> str:
    """The ``DATABASES`` alias that holds the queue: ``EMAIL_QUEUE_URL = "django"`` (the
    default when the ``default`` database is SQLite or PostgreSQL) is ``default``,
    ``"django:<alias>"`` that alias. Any other queue raises ``ImproperlyConfigured``."""
    from mailout.conf import settings
    from mailout.django.conf import use_django_settings
    from mailout.django.queue import alias_of

    use_django_settings()
    return alias_of(settings.EMAIL_QUEUE_URL)


def operate(
    operation: str, ids: Sequence[int], *, using: str, who: str = "", now: float | None = None
) -> int:
    """``hold``, ``release``, ``expire`` or ``retry`` the messages ``ids``; how many changed
    (the others were not in a state the operation applies to). ``who`` is written in each
    message's event ("held by ana in Django's admin")."""
    name, kind, text = OPERATIONS[operation]
    text = f"{text} by {who}" if who else f"{text} by an operator"
    now = time.time() if now is None else now
    return _chunked(
        ids, using, lambda vendor, raw, chunk: _change(vendor, raw, name, kind, text, chunk, now)
    )


def delete(ids: Sequence[int], *, using: str) -> int:
    """Delete the messages ``ids`` with their events and bodies, except those a worker holds
    (``sending``); how many were deleted."""
    return _chunked(ids, using, _delete)


def _chunked(ids: Sequence[int], using: str, body: Any) -> int:
    connection = connections[using]
    vendor = connection.vendor
    if vendor not in ("sqlite", "postgresql"):
        raise ImproperlyConfigured(
            f"DATABASES[{using!r}]: the queue lives on SQLite or PostgreSQL, not {vendor}"
        )
    ids = [int(i) for i in ids]
    total = 0
    for start in range(0, len(ids), CHUNK):
        with transaction.atomic(using=using):
            connection.ensure_connection()
            # Django's own connection, inside the transaction Django just began.
            total += int(body(vendor, connection.connection, ids[start : start + CHUNK]))
    return total


def _change(
    vendor: str, raw: Any, name: str, kind: str, text: str, chunk: list[int], now: float
) -> int:
    if vendor == "sqlite":
        from mailout.queue.storage import sqlite

        return sqlite.operate(raw, name, kind, text, chunk, now)
    from mailout.queue.storage import postgres

    with raw.cursor() as cur:
        count = postgres.operate(cur, name, kind, text, chunk, now)
        if count and name in ("unhold", "retry"):
            # Mail due now: wake idle workers when this commits (they poll anyway).
            cur.execute("SELECT current_schema()")
            channel = f"mailout_queue.{cur.fetchone()[0]}"[:63]
            cur.execute(postgres.Q["notify"], {"channel": channel})
    return count


def _delete(vendor: str, raw: Any, chunk: list[int]) -> int:
    if vendor == "sqlite":
        from mailout.queue.storage import sqlite

        return sqlite.delete(raw, chunk)
    from mailout.queue.storage import postgres

    with raw.cursor() as cur:
        return postgres.delete_messages(cur, chunk)
