"""Outcomes are committed as each burst of replies comes in, not when the whole batch is done:
what a killed worker sends twice is what its connections had in flight."""

from __future__ import annotations

import threading
import time

from mailout.queue import Hooks, Queue, RetryPolicy, State
from mailout.queue.delivery import Deliverer
from mailout.queue.mailer import build_mailer
from mailout.queue.storage.sqlite import SQLiteStorage
from mailout.queue.transport import transport_for
from tests.queue.conftest import T0, Clock, new
from tests.queue.helpers import Recorder, smtp_to
from tests.servers.faulty import FaultyServer, Rule, Script


def test_the_first_burst_is_committed_while_the_second_is_still_out(tmp_path, clock: Clock) -> None:  # type: ignore[no-untyped-def]
    # One connection; the pool hands it 50 messages a burst: 60 messages are two bursts, and
    # the server sits on the second burst's first end of data for a while.
    script = Script(rules=[Rule(r"BDAT \d+ LAST", delay=1.5, after=50, times=1)])
    with FaultyServer(script) as server, SQLiteStorage(tmp_path / "q.db") as storage:
        smtp_to(server, EMAIL_POOL_SIZE=1)
        storage.enqueue([new(n) for n in range(60)], now=T0)
        claimed = storage.claim(worker="w", limit=60, lease=60, now=T0)
        recorder = Recorder()
        deliverer = Deliverer(storage, "w", RetryPolicy(), Hooks(), recorder, clock=clock)
        transport = transport_for(build_mailer("mailout.backends.smtp.EmailBackend"))
        reports: list[object] = []
        thread = threading.Thread(
            target=lambda: reports.extend(deliverer.deliver(transport, claimed))
        )
        thread.start()
        try:
            deadline = time.monotonic() + 10
            while len(recorder.reports) < 50 and time.monotonic() < deadline:
                time.sleep(0.01)
            # The first burst is recorded sent while the delivery is still running.
            assert thread.is_alive()
            assert Queue(storage=storage).status().counts[State.SENT] == 50
        finally:
            thread.join(30)
            transport.close()
        assert len(reports) == 60
        assert Queue(storage=storage).status().counts[State.SENT] == 60
