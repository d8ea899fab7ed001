"""The queue on PostgreSQL: migrate, the caller's transaction, wake-ups, workers on many
"machines" (processes), limits shared through the database, lost connections.

The storage contract suite runs against PostgreSQL too (``test_storage_contract.py``); the
crash test with four workers is in ``test_crash.py``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import mailout
from mailout.exceptions import ImproperlyConfigured, InvalidAddressError, SchemaVersionError
from mailout.queue import Hooks, Queue, RetryPolicy, Worker, WorkerOptions, enqueue
from mailout.queue.storage import open_storage
from mailout.queue.storage.postgres import SCHEMA_VERSION, PostgresStorage
from tests.queue.conftest import T0, new
from tests.queue.crash import query
from tests.queue.helpers import Recorder
from tests.queue.pg import SERVER, admin, pg_queue, schema_of, terminate
from tests.servers.recording import RecordingServer

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(180)


def message(n: int, **kwargs: Any) -> mailout.EmailMessage:
    return mailout.EmailMessage(
        f"pg {n}", "body", "shop@example.com", [f"u{n}@d{n % 5}.example"], **kwargs
    )


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("EMAIL_")}
    return subprocess.run(
        [sys.executable, "-m", "mailout", "queue", *args],
        cwd=ROOT, env={**base, **(env or {})}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.fixture
def url() -> Iterator[str]:
    with pg_queue() as found:
        yield found


# -- the schema ----------------------------------------------------------------------------------


def test_migrate_from_several_hosts_at_once_then_again() -> None:
    with pg_queue(migrate=False) as url:
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "mailout", "queue", "migrate", "--url", url],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(4)
        ]
        outputs = [p.communicate(timeout=60) for p in procs]
        assert [p.returncode for p in procs] == [0] * 4, outputs
        applied = [out for out, _ in outputs if "applied schema version(s) 1" in out]
        assert len(applied) == 1  # one of them migrated; the others found it done
        again = cli("migrate", "--url", url)
        assert (again.returncode, "schema up to date" in again.stdout) == (0, True)
        with PostgresStorage(url) as storage:
            assert storage.schema_version() == SCHEMA_VERSION


def test_a_worker_refuses_a_missing_or_old_schema() -> None:
    with pg_queue(migrate=False) as url:
        done = cli("worker", "--once", "--url", url)
        assert done.returncode == 2
        assert "no queue schema" in done.stderr
        assert "run `mailout queue migrate`" in done.stderr
        assert cli("migrate", "--url", url).returncode == 0
        with admin() as conn:
            conn.execute(
                f'UPDATE "{schema_of(url)}".mailout_queue_meta SET value = %s '
                "WHERE name = 'schema_version'",
                [str(SCHEMA_VERSION - 1)],
            )
        with pytest.raises(
            SchemaVersionError, match=r"schema version 0.*run `mailout queue migrate`"
        ):
            PostgresStorage(url)
        assert cli("migrate", "--url", url).returncode == 0
        PostgresStorage(url).close()


def test_without_the_extra_a_postgresql_url_names_it() -> None:
    code = (
        "import sys; sys.modules['psycopg'] = None\n"
        "from mailout.queue.storage import open_storage\n"
        "open_storage('postgresql://postgres@127.0.0.1/test')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 1
    assert "ImproperlyConfigured" in done.stderr
    assert 'pip install "mailout[postgres]"' in done.stderr


def test_the_url_keeps_its_password_out_of_names_and_errors() -> None:
    with pytest.raises(ImproperlyConfigured, match="pool_size"):
        open_storage("postgresql://u:s3cret@127.0.0.1:1/test?pool_size=0")
    from mailout.queue.storage._pgconn import PgURL

    parsed = PgURL.parse("postgresql://u:s3cret@h:5432/db?schema=mail&sslmode=require&notify=off")
    assert parsed.name == "postgresql://u@h:5432/db?schema=mail"
    assert "s3cret" in parsed.conninfo
    assert "sslmode=require" in parsed.conninfo
    assert "schema" not in parsed.conninfo
    assert (parsed.schema, parsed.notify) == ("mail", False)


def test_libpq_parameters_reach_the_server_as_written(url: str) -> None:
    """A space in a libpq parameter (%20) stays a space: libpq reads "+" as a plus sign."""
    options = "options=-c%20lock_timeout%3D7s%20-c%20statement_timeout%3D5min"
    with PostgresStorage(f"{url}&{options}") as storage:
        assert "%20" in storage.url.conninfo

        def read(cur: Any) -> tuple[str, str]:
            cur.execute(
                "SELECT current_setting('lock_timeout'), current_setting(%s)", ["statement_timeout"]
            )
            return cur.fetchone()  # type: ignore[no-any-return]

        seen = storage._read("reading", read)
    assert seen == ("7s", "5min")


def test_claimed_rows_read_back_every_field(url: str) -> None:
    """Claims come back in binary and the usual row is read without parsing its metadata:
    priorities (HIGH is 0), the 8-bit flags, user metadata and a corrupt row all survive."""
    from dataclasses import replace

    from mailout.queue.models import Priority

    plain = new(1, priority=Priority.HIGH)
    flagged = replace(new(2, priority=Priority.LOW), smtputf8=True, eight_bit=True)
    with_meta = new(3, metadata={"order": 7})
    broken = new(4)
    with PostgresStorage(url) as storage:
        ids = storage.enqueue([plain, flagged, with_meta, broken], now=T0)
        sql = f"UPDATE mailout_queue_message SET pending = '[1' WHERE id = {ids[3]} RETURNING id"
        assert query(url, sql) == [(ids[3],)]
        claimed = {c.id: c for c in storage.claim(worker="w", limit=10, lease=30, now=T0)}
    a, b, c, d = (claimed[i] for i in ids)
    assert (a.priority, a.smtputf8, a.eight_bit, dict(a.metadata)) == (
        Priority.HIGH, False, False, {}
    )  # fmt: skip
    assert (a.recipients, a.data, a.message_id, a.created_at, a.corrupt) == (
        plain.recipients, plain.data, plain.message_id, T0, None
    )  # fmt: skip
    assert (b.priority, b.smtputf8, b.eight_bit) == (Priority.LOW, True, True)
    assert dict(c.metadata) == {"order": 7}
    assert d.corrupt is not None
    assert "not valid JSON" in d.corrupt
    a.metadata["changed"] = 1  # type: ignore[index]  # each message has its own mapping
    assert dict(b.metadata) == {}


def test_a_row_an_older_mailout_stored_is_scanned_when_sent(url: str) -> None:
    # Rows written before bodies were marked canonical carry no "crlf" in their metadata:
    # their bodies are scanned (and normalised if need be) on their way to the wire.
    with PostgresStorage(url) as storage:
        [id_] = storage.enqueue([new(1)], now=T0)
        old = '{"smtputf8": false, "eight_bit": false, "user": {}}'
        assert query(url, f"UPDATE mailout_queue_message SET metadata = '{old}' "
                     f"WHERE id = {id_} RETURNING id") == [(id_,)]  # fmt: skip
        [claimed] = storage.claim(worker="w", limit=1, lease=30, now=T0)
    assert type(claimed.data) is bytes
    assert claimed.data == new(1).data


# -- the caller's transaction --------------------------------------------------------------------


def test_enqueue_in_the_callers_transaction(url: str) -> None:
    import psycopg

    with psycopg.connect(SERVER) as conn:
        conn.execute("CREATE TEMP TABLE shop_order (id int)")
        conn.commit()
        conn.execute("INSERT INTO shop_order VALUES (1)")
        [gone] = enqueue([message(1)], url=url, connection=conn)
        assert gone is not None
        conn.rollback()  # the order is not placed: no mail either
        assert query(url, "SELECT count(*) FROM mailout_queue_message") == [(0,)]
        conn.execute("INSERT INTO shop_order VALUES (2)")
        [kept] = enqueue([message(2)], url=url, connection=conn)
        # Not visible to anyone else (a worker) before the caller commits.
        assert query(url, "SELECT count(*) FROM mailout_queue_message") == [(0,)]
        conn.commit()
        assert query(url, "SELECT id, subject FROM mailout_queue_message") == [(kept, "pg 2")]
        # The caller's search path is as it was.
        assert conn.execute("SHOW search_path").fetchone()[0] == '"$user", public'


def test_the_backend_takes_the_callers_connection_and_a_bad_batch_stores_nothing(
    url: str,
) -> None:
    import psycopg

    with psycopg.connect(SERVER, autocommit=True) as conn:
        backend = mailout.get_connection(
            "mailout.backends.queue.EmailBackend", url=url, db_connection=conn
        )
        assert backend.send_messages([message(1), message(2)]) == 2  # autocommit: stored now
        bad = message(3)
        bad.to = ["not an address"]
        with conn.transaction(), pytest.raises(InvalidAddressError):
            backend.send_messages([message(4), bad])
        assert query(url, "SELECT count(*) FROM mailout_queue_message") == [(2,)]
    with pytest.raises(ImproperlyConfigured, match="only a postgresql:// or sqlite:/// queue"):
        enqueue([message(5)], url="memory:", connection=object())


# -- wake-ups ------------------------------------------------------------------------------------


def _wait_for_delivery(url: str, *, poll: float, notify: bool) -> float:
    """Seconds from a committed enqueue to its delivery by an idle worker polling every
    ``poll`` seconds."""
    import psycopg

    if not notify:
        url += "&notify=off"
    storage = PostgresStorage(url)
    recorder = Recorder()
    mailout.configure({"EMAIL_QUEUE_MAILER": "mailout.backends.locmem.EmailBackend"})
    worker = Worker(  # the real clock and the real wait on the wake-up event
        storage,
        options=WorkerOptions(batch=50, concurrency=2, lease=30.0, poll_interval=poll),
        policy=RetryPolicy(),
        hooks=Hooks(),
        reporter=recorder,
    )
    thread = threading.Thread(target=worker.run, kwargs={"handle_signals": False})
    thread.start()
    try:
        time.sleep(0.8)  # the worker is idle: it looked, found nothing, and sleeps
        with psycopg.connect(SERVER) as conn:
            enqueue([message(1)], url=url, connection=conn)
            conn.commit()
            committed = time.time()
        deadline = time.monotonic() + poll + 10
        while not recorder.reports and time.monotonic() < deadline:
            time.sleep(0.01)
        assert recorder.reports, "the message was never delivered"
        [report] = recorder.reports
        [event] = [e for e in storage.get(report.id).events if e.kind == "sent"]
        return event.at - committed
    finally:
        worker.stop()
        thread.join(30)
        storage.close()


def test_a_committed_enqueue_wakes_an_idle_worker_within_a_second(url: str) -> None:
    # The worker would otherwise sleep 30 s: NOTIFY, sent on commit, is what wakes it.
    assert _wait_for_delivery(url, poll=30.0, notify=True) < 1.0


def test_without_notifications_an_idle_worker_finds_mail_within_the_poll_interval(
    url: str,
) -> None:
    waited = _wait_for_delivery(url, poll=2.0, notify=False)
    assert waited < 2.0 + 0.5  # the poll interval, and the delivery itself


# -- the cluster ---------------------------------------------------------------------------------


def _workers(url: str, count: int, *extra: str, env: dict[str, str]) -> list[subprocess.Popen[str]]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("EMAIL_")}
    command = [
        sys.executable, "-m", "mailout", "queue", "worker", "--progress", "lines", "--url", url,
        *extra,
    ]  # fmt: skip
    procs = []
    for _ in range(count):
        # A file, not a pipe: a full pipe would stop the worker. Closed by _stop.
        log = tempfile.TemporaryFile("w+")  # noqa: SIM115
        proc = subprocess.Popen(
            command, cwd=ROOT, env={**base, **env}, stdout=subprocess.DEVNULL, stderr=log,
            text=True,
        )  # fmt: skip
        proc.log = log  # type: ignore[attr-defined]
        procs.append(proc)
    return procs


def _stop(procs: list[subprocess.Popen[str]]) -> tuple[list[int], list[str]]:
    """SIGTERM every worker: their exit statuses, and their logs' warnings and errors."""
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    codes, logs = [], []
    for proc in procs:
        try:
            codes.append(proc.wait(30))
        except subprocess.TimeoutExpired:
            proc.kill()
            codes.append(proc.wait())
        log = proc.log  # type: ignore[attr-defined]
        log.seek(0)
        logs.append("".join(line for line in log if "level=info" not in line)[-3000:])
        log.close()
    return codes, logs


def _wait_until(url: str, sql: str, expected: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if query(url, sql) == expected:
            return
        time.sleep(0.1)
    raise AssertionError(f"{sql} never gave {expected}: {query(url, sql)}")


def _claim_log(url: str) -> None:
    """Log every claim (message, worker) in a table of the test's, by a trigger."""
    schema = schema_of(url)
    with admin() as conn:
        conn.execute(f'CREATE TABLE "{schema}".claim_log (message bigint, worker text)')
        conn.execute(
            f'CREATE FUNCTION "{schema}".log_claim() RETURNS trigger LANGUAGE plpgsql AS $$ '
            f'BEGIN INSERT INTO "{schema}".claim_log VALUES (NEW.id, NEW.lease_owner); '
            "RETURN NEW; END $$"
        )
        conn.execute(
            f'CREATE TRIGGER log_claim AFTER UPDATE ON "{schema}".mailout_queue_message '
            "FOR EACH ROW WHEN (NEW.state = 'sending' AND OLD.state <> 'sending') "
            f'EXECUTE FUNCTION "{schema}".log_claim()'
        )


def test_four_workers_drain_one_queue_each_message_claimed_once(url: str) -> None:
    _claim_log(url)
    count = 3000
    with Queue(url) as queue:
        for start in range(0, count, 500):
            queue.enqueue([message(n) for n in range(start, start + 500)])
    with RecordingServer() as server:
        env = {"EMAIL_HOST": server.host, "EMAIL_PORT": str(server.port)}
        procs = _workers(url, 4, "--batch", "50", env=env)
        try:
            _wait_until(url, "SELECT count(*) FROM mailout_queue_message WHERE state = 'sent'",
                        [(count,)])  # fmt: skip
            status = cli("status", "--url", url)
        finally:
            codes, logs = _stop(procs)
        received = Counter(a.message_id for a in server.accepted)
    assert codes == [0, 0, 0, 0], logs
    assert len(received) == count
    assert set(received.values()) == {1}
    claims = query(url, "SELECT message, worker FROM claim_log")
    assert len(claims) == count  # every message claimed once, by one worker
    by_worker = Counter(worker for _, worker in claims)
    assert len(by_worker) == 4, by_worker  # and the work was shared by the four
    # `queue status` shows the cluster: each worker (host, pid), each state, each mailer.
    assert status.returncode == 0
    assert status.stdout.count(" pid ") == 4
    for proc in procs:
        assert f" pid {proc.pid} " in status.stdout
    assert "sent" in status.stdout


def test_status_shows_workers_states_and_mailers(url: str) -> None:
    with PostgresStorage(url) as storage:
        storage.enqueue([new(1, mailer="ses"), new(2, mailer="smtp"), new(3, mailer="ses")], now=T0)
        storage.claim(worker="host-a:11:x", limit=1, lease=30, now=T0)
        from mailout.queue.models import WorkerInfo

        storage.heartbeat(
            WorkerInfo("host-a:11:x", "host-a", 11, T0, T0, 1, 5, 0, 0), lease=30, now=T0
        )
        storage.heartbeat(
            WorkerInfo("host-b:22:y", "host-b", 22, T0, T0, 0, 7, 1, 0), lease=30, now=T0
        )
        data = storage.stats(now=T0).as_json(T0)
    assert data["mailers"] == {"ses": {"queued": 1, "sending": 1}, "smtp": {"queued": 1}}
    assert [(w["host"], w["pid"], w["in_flight"], w["sent"]) for w in data["workers"]] == [
        ("host-a", 11, 1, 5),
        ("host-b", 22, 0, 7),
    ]


def test_a_rate_limit_holds_across_four_workers(url: str) -> None:
    rate, count = 40, 200
    arrivals: list[float] = []
    with Queue(url) as queue:
        queue.enqueue([message(n) for n in range(count)])
    with RecordingServer(on_accept=lambda _: arrivals.append(time.monotonic())) as server:
        env = {"EMAIL_HOST": server.host, "EMAIL_PORT": str(server.port)}
        procs = _workers(url, 4, "--rate", f"{rate}/s", env=env)
        try:
            _wait_until(url, "SELECT count(*) FROM mailout_queue_message WHERE state = 'sent'",
                        [(count,)])  # fmt: skip
        finally:
            codes, logs = _stop(procs)
    assert codes == [0, 0, 0, 0], logs
    arrivals.sort()
    assert len(arrivals) == count
    # The bucket holds one second's worth (a burst of `rate`) and refills at `rate`; tokens are
    # taken at the claim, and a claimed batch reaches the server up to a moment later
    # (JITTER). So no span of time t at the server holds more than rate * (t + JITTER) + rate
    # messages, 10 % allowed on the rate. Checked on every span rather than on one window,
    # which a slow start on a loaded machine shifts (the bucket refills while workers start).
    # Four workers each keeping the limit for themselves break it at once (200 in ~1.3 s).
    # Spans start after the first burst: at the start a claimed batch waits for its worker's
    # new SMTP connection (up to half a second on a loaded machine), later ones do not.
    jitter = 0.25
    for i, start in enumerate(arrivals[rate:], start=rate):
        for j in range(i + rate + 1, count):
            span = arrivals[j] - start
            assert j - i + 1 <= 1.1 * rate * (span + jitter) + rate, (i, j, span)
    # And the limit does not starve the queue: after the first burst, the pace is the rate.
    steady = arrivals[rate:]
    measured = (len(steady) - 1) / (steady[-1] - steady[0])
    print(f"rate {rate}/s across four workers: measured {measured:.1f}/s at the server")
    assert measured >= 0.9 * rate


def test_connection_caps_hold_across_workers(url: str) -> None:
    from mailout.queue.caps import Slots

    claimed = []
    with PostgresStorage(url) as storage:
        storage.enqueue([new(n, mailer="ses") for n in range(300)], now=T0)
        claimed = storage.claim(worker="w1", limit=300, lease=30, now=T0)
        caps = [
            storage.caps(
                worker=w, domain_cap=20, mailer_caps={"ses": 3}, lease=10, clock=lambda: T0
            )
            for w in ("w1", "w2")
        ]
        first, refused, slots = caps[0].admit("ses", claimed[:100], 4, 50)  # two connections
        assert (len(first), len(refused), slots.counts[("mailer", "ses")]) == (100, 0, 2)
        second, refused, other = caps[1].admit("ses", claimed[100:300], 4, 50)
        # One connection left, anywhere: all 200 go, over that one.
        assert (len(second), len(refused), other.width) == (200, 0, 1)
        assert caps[0].busy()[1] == caps[1].busy()[1] == {"ses"}
        caps[0].done(slots)
        caps[0].done(slots)  # twice (after a lost connection): changes nothing more
        assert caps[1].busy()[1] == set()
        # A worker that dies keeps its slots until its lease runs out.
        dead = storage.caps(worker="w3", domain_cap=20, mailer_caps={"ses": 3}, lease=10,
                            clock=lambda: T0)  # fmt: skip
        dead.admit("ses", claimed[:150], 4, 50)
        assert caps[1].busy()[1] == {"ses"}
        later = storage.caps(worker="w2", domain_cap=20, mailer_caps={"ses": 3}, lease=10,
                             clock=lambda: T0 + 11)  # fmt: skip
        assert later.busy()[1] == set()
        assert isinstance(other, Slots)


def test_the_domain_cap_holds_across_workers(url: str) -> None:
    with PostgresStorage(url) as storage:
        storage.enqueue([new(n, to=(f"u{n}@big.example",)) for n in range(200)], now=T0)
        claimed = storage.claim(worker="w1", limit=200, lease=30, now=T0)
        one, two = (
            storage.caps(worker=w, domain_cap=3, mailer_caps={}, lease=10, clock=lambda: T0)
            for w in ("w1", "w2")
        )
        first, _, _ = one.admit("m", claimed[:100], 4, 50)
        second, refused, slots = two.admit("m", claimed[100:], 4, 50)
        assert (len(first), len(second), refused, slots.width) == (100, 100, [], 1)
        assert two.busy() == ({"big.example"}, set())
        third, refused, _ = one.admit("m", claimed[:10], 4, 50)
        assert (third, len(refused)) == ([], 10)  # no slot free: back to the queue


def test_slots_given_back_are_told_apart_from_new_mail(url: str) -> None:
    # A delivery's slots given back wake workers waiting for one, but are no news of mail: a
    # worker that found only busy mail keeps from asking again (worker.py, leftout.py).
    told: list[str] = []
    heard = threading.Event()

    def note(kind: str) -> None:
        told.append(kind)
        heard.set()

    def wait_for(kind: str) -> None:
        deadline = time.monotonic() + 5
        while kind not in told and time.monotonic() < deadline:
            heard.wait(0.05)
            heard.clear()
        assert kind in told, f"no {kind} notification came: {told}"

    with PostgresStorage(url) as storage:
        stop = storage.subscribe(lambda: note("mail"), slots_freed=lambda: note("slots"))
        assert stop is not None
        try:
            wait_for("mail")  # on listening: mail may have come while nobody listened
            time.sleep(0.2)
            told.clear()
            storage.enqueue([new(1)], now=T0)
            wait_for("mail")
            claimed = storage.claim(worker="w1", limit=1, lease=30, now=T0)
            caps = storage.caps(worker="w1", domain_cap=1, mailer_caps={}, lease=10,
                                clock=lambda: T0)  # fmt: skip
            _, _, slots = caps.admit("m", claimed, 4, 50)
            time.sleep(0.2)
            told.clear()
            caps.done(slots)
            wait_for("slots")
            time.sleep(0.2)  # nothing else comes
            assert told == ["slots"]
        finally:
            stop()


# -- lost connections ----------------------------------------------------------------------------


def test_workers_carry_on_when_their_connections_are_killed(url: str) -> None:
    name = f"mailout-test-{uuid.uuid4().hex[:10]}"
    url = f"{url}&application_name={name}"
    count = 3000
    with Queue(url) as queue:
        for start in range(0, count, 500):
            queue.enqueue([message(n) for n in range(start, start + 500)])
    with RecordingServer() as server:
        env = {"EMAIL_HOST": server.host, "EMAIL_PORT": str(server.port)}
        procs = _workers(url, 4, "--batch", "20", "--lease", "3", env=env)
        killed = 0
        try:
            _wait_until(url, "SELECT count(*) FROM mailout_queue_worker", [(4,)])
            for _ in range(6):  # while they work: every connection of theirs, again and again
                time.sleep(0.3)
                killed += terminate(name)
            _wait_until(url, "SELECT count(*) FROM mailout_queue_message WHERE state = 'sent'",
                        [(count,)], timeout=90)  # fmt: skip
            alive = [proc.poll() is None for proc in procs]
        finally:
            codes, errors = _stop(procs)
        received = Counter(a.message_id for a in server.accepted)
    assert killed >= 12  # the pools', the LISTEN connections', again after reconnecting
    assert alive == [True] * 4, errors  # they reconnected and carried on
    assert codes == [0] * 4, errors
    stored = dict(query(url, "SELECT message_id, state FROM mailout_queue_message"))
    assert set(stored.values()) == {"sent"}
    assert set(stored) == set(received)  # nothing lost, nothing marked sent that was not sent
