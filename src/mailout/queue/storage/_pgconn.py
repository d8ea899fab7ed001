"""The PostgreSQL storage's connections: the URL, a pool, retries after a lost connection, and
the LISTEN connection that wakes idle workers.

A connection can be lost at any moment (PostgreSQL restarted, a failover, an administrator's
``pg_terminate_backend``). What is safe to run again is run again on a new connection, for up
to ``retry_for`` seconds: reads, claims (a claim whose commit was lost leaves rows that
nobody renews: their lease expires and they come back), outcomes (recorded only by the
lease holder for the attempt it claimed, so running one twice changes nothing the second
time). An enqueue is retried only if it failed before its commit was sent: a lost commit's
outcome is unknown, and storing the messages twice is worse than an error the caller sees.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from mailout.exceptions import ImproperlyConfigured, StorageError
from mailout.utils import without_password

if TYPE_CHECKING:
    import psycopg
    import psycopg_pool

__all__ = ["SLOTS_FREED", "Connector", "Listener", "PgURL", "import_driver", "without_password"]

log = logging.getLogger("mailout.queue")

#: The payload of the NOTIFY a delivery sends when it gives its connection slots back (the
#: `give_slots` query); every other notification on the channel announces mail.
SLOTS_FREED = "slots"

EXTRA: Final = 'pip install "mailout[postgres]"'

BEGIN: Final = b"BEGIN"
#: A worker's bookkeeping commits without waiting for its WAL flush (see Connector.run): set
#: for the transaction only (a pooler's next client gets the server's default), in the same
#: round trip as BEGIN (two statements without parameters: the simple query protocol).
BEGIN_BOOKKEEPING: Final = b"BEGIN; SET LOCAL synchronous_commit = off"
IDLE: Final = 0  # psycopg.pq.TransactionStatus.IDLE


def import_driver(setting: str = "EMAIL_QUEUE_URL") -> tuple[Any, Any]:
    """psycopg and psycopg_pool, or an error naming the extra that brings them."""
    try:
        import psycopg
        import psycopg_pool
    except ImportError as exc:
        raise ImproperlyConfigured(
            f"{setting}: a postgresql:// queue needs psycopg 3 and psycopg_pool ({exc.name} "
            f"is not installed): {EXTRA}"
        ) from None
    return psycopg, psycopg_pool


@dataclass(frozen=True, slots=True)
class PgURL:
    """``postgresql://user:password@host:5432/db?schema=mail&notify=off&pool_size=8`` split
    into the libpq URL (every other parameter is libpq's) and mailout's own options."""

    conninfo: str = field(repr=False)  # the password is in it: never in a repr
    name: str  # the URL without its password: what errors and status show
    schema: str = "public"
    notify: bool = True
    pool_size: int = 8

    @classmethod
    def parse(cls, url: str, *, setting: str = "EMAIL_QUEUE_URL") -> PgURL:
        parts = urlsplit(url)
        if parts.scheme not in ("postgresql", "postgres"):
            raise ImproperlyConfigured(f"{setting}: {url.split('@')[-1]!r} is not postgresql://")
        ours: dict[str, str] = {}
        theirs: list[tuple[str, str]] = []
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            if key in ("schema", "notify", "pool_size"):
                ours[key] = value
            else:
                theirs.append((key, value))
        # libpq percent-decodes a URL's parameters but reads "+" as itself: a space that was
        # "%20" must stay "%20" (options=-c%20statement_timeout%3D5s).
        conninfo = urlunsplit(parts._replace(query=urlencode(theirs, quote_via=quote)))
        netloc = parts.netloc.rpartition("@")
        user = netloc[0].partition(":")[0]
        shown = urlunsplit(parts._replace(netloc=f"{user}@{netloc[2]}" if user else netloc[2]))
        schema = unquote(ours.get("schema", "public")) or "public"
        notify = ours.get("notify", "on").lower()
        if notify not in ("on", "off", "true", "false", "1", "0", "yes", "no"):
            raise ImproperlyConfigured(f"{setting}: notify= takes on or off, got {notify!r}")
        try:
            pool_size = int(ours.get("pool_size", "8"))
        except ValueError:
            pool_size = 0
        if pool_size < 2:
            raise ImproperlyConfigured(f"{setting}: pool_size= takes a whole number of 2 or more")
        if "?" in shown:
            shown = shown.split("?")[0] + (f"?schema={quote(schema)}" if schema != "public" else "")
        elif schema != "public":
            shown += f"?schema={quote(schema)}"
        return cls(conninfo, shown, schema, notify in ("on", "true", "1", "yes"), pool_size)


class Connector:
    """A pool of connections whose search_path is the queue's schema, and ``run``, which
    gives a body a cursor inside one transaction and retries it when a connection is lost."""

    def __init__(
        self, url: PgURL, *, retry_for: float = 30.0, application_name: str = "mailout-queue"
    ) -> None:
        self.url = url
        self.retry_for = retry_for
        self.psycopg, pool_module = import_driver()
        self._closed = False
        # The URL's own application_name (and connect_timeout) win over these defaults.
        self.options = {
            name: value
            for name, value in (("application_name", application_name), ("connect_timeout", 10))
            if f"{name}=" not in url.conninfo
        }
        # Autocommit: run() begins and ends each transaction itself, BEGIN in the same round
        # trip as its settings. A connection that died while idle (a restart,
        # pg_terminate_backend) is not checked when it is taken out (an empty query, one more
        # round trip every time): its BEGIN fails, before anything of the body ran, and run()
        # tries again on a new one.
        self.pool: psycopg_pool.ConnectionPool[Any] = pool_module.ConnectionPool(
            url.conninfo,
            min_size=1,
            max_size=url.pool_size,
            kwargs={**self.options, "autocommit": True},
            configure=self._configure,
            open=False,
            timeout=10.0,
            name=f"mailout-queue {url.name}",
        )
        with self.errors("connect"):
            self.pool.open(wait=True, timeout=10.0)

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute("SELECT set_config('search_path', %s, false)", [self.search_path(conn)])

    def search_path(self, conn: Any) -> str:
        return str(self.psycopg.sql.Identifier(self.url.schema).as_string(conn))

    def connect(self, **options: Any) -> psycopg.Connection[Any]:
        """A connection of its own (LISTEN, migrations), outside the pool."""
        return self.psycopg.connect(  # type: ignore[no-any-return]
            self.url.conninfo, **self.options, **options
        )

    @contextlib.contextmanager
    def errors(self, doing: str) -> Iterator[None]:
        """psycopg's and the pool's errors as StorageError naming the queue (no password)."""
        try:
            yield
        except (self.psycopg.Error, self._pool_errors()) as exc:
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StorageError(f"queue database {self.url.name}: {doing} failed: {detail}") from exc

    def _pool_errors(self) -> type[Exception]:
        import psycopg_pool

        return psycopg_pool.PoolTimeout

    def _lost(self, exc: BaseException) -> bool:
        import psycopg_pool

        return isinstance(exc, self.psycopg.OperationalError | psycopg_pool.PoolTimeout)

    def run(
        self,
        doing: str,
        body: Callable[[Any], Any],
        *,
        again: str = "always",
        durable: bool = True,
        transaction: bool = True,
    ) -> Any:
        """``body(cursor)`` in one transaction, committed. ``again``: ``"always"`` (safe to run
        twice), ``"before-commit"`` (only if the body never reached its commit),
        ``"before-start"`` (only if the body never started: it consumes an iterator).
        ``durable=False``: the commit returns before its WAL is flushed (a worker's bookkeeping:
        if PostgreSQL itself crashes in the next fraction of a second, a claim comes back and
        an outcome is lost, so the message is delivered again, as after a worker's crash).
        ``transaction=False``: each statement on its own, no BEGIN and COMMIT (a read of one
        statement: one round trip instead of three)."""
        deadline = time.monotonic() + self.retry_for
        pause = 0.05
        begin = BEGIN if durable else BEGIN_BOOKKEEPING
        while True:
            reached_commit = started = False
            try:
                with (
                    self.errors(doing),
                    self.pool.connection() as conn,
                    conn.cursor() as cursor,
                ):
                    try:
                        if transaction:
                            # On a connection that died while idle, this fails: nothing ran.
                            cursor.execute(begin, prepare=False)
                        started = True
                        result = body(cursor)
                        reached_commit = True
                        if transaction:
                            cursor.execute(b"COMMIT", prepare=False)
                    except BaseException:
                        if conn.info.transaction_status != IDLE and not conn.closed:
                            with contextlib.suppress(Exception):
                                cursor.execute(b"ROLLBACK", prepare=False)
                        raise
                return result
            except StorageError as exc:
                cause = exc.__cause__
                retry = (
                    not self._closed
                    and cause is not None
                    and self._lost(cause)
                    and time.monotonic() < deadline
                    and (
                        again == "always"
                        or (again == "before-commit" and not reached_commit)
                        or (again == "before-start" and not started)
                    )
                )
                if not retry:
                    if reached_commit and again != "always" and cause is not None:
                        raise StorageError(
                            f"{exc} (the connection was lost during the commit: whether it was "
                            "stored is unknown)"
                        ) from cause
                    raise
                log.warning("queue database %s: %s; trying again", self.url.name, exc)
                time.sleep(pause)
                pause = min(1.0, pause * 2)

    def close(self) -> None:
        self._closed = True
        self.pool.close()


class Listener:
    """A thread that LISTENs on the queue's channel and calls ``wake()`` on each notification
    of mail (``slots_freed()`` on one that a delivery gave its connection slots back: payload
    ``slots``), reconnecting (and calling ``wake()``, since mail may have come meanwhile) when
    its connection is lost."""

    def __init__(
        self,
        connector: Connector,
        channel: str,
        wake: Callable[[], None],
        slots_freed: Callable[[], None],
    ) -> None:
        self._connector = connector
        self._channel = channel
        self._wake = wake
        self._slots_freed = slots_freed
        self._stop = threading.Event()
        self._conn: psycopg.Connection[Any] | None = None
        self._thread = threading.Thread(target=self._run, name="mailout-queue-listen", daemon=True)
        self._thread.start()

    def _listen(self) -> psycopg.Connection[Any]:
        conn = self._connector.connect(autocommit=True)
        sql = self._connector.psycopg.sql
        conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
        return conn

    def _run(self) -> None:
        pause = 0.1
        while not self._stop.is_set():
            try:
                self._conn = conn = self._listen()
                pause = 0.1
                self._wake()  # mail may have come while nobody listened
                while not self._stop.is_set():
                    for notice in conn.notifies(timeout=0.5, stop_after=1):
                        if notice.payload == SLOTS_FREED:
                            self._slots_freed()
                        else:
                            self._wake()
            except Exception as exc:
                if self._stop.is_set():
                    break
                log.warning(
                    "queue database %s: LISTEN failed (%s); polling meanwhile",
                    self._connector.url.name,
                    type(exc).__name__,
                )
                self._stop.wait(pause)
                pause = min(5.0, pause * 2)
            finally:
                conn_, self._conn = self._conn, None
                if conn_ is not None:
                    with contextlib.suppress(Exception):
                        conn_.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
