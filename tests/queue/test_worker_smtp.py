"""The worker against the real fault-injecting SMTP server: exact final states and attempts.

Every test runs on an injected clock (``Clock``) with the jitter fixed, so retry times are
asserted to the second; the server is real (tests/servers/faulty.py, over loopback).
"""

from __future__ import annotations

import email
import email.policy

import pytest

import mailout
from mailout.queue import Queue, RetryPolicy, State
from tests.conftest import free_port
from tests.queue.conftest import T0, Clock
from tests.queue.helpers import FixedPortServer, Recorder, drain, smtp_to, states
from tests.servers.faulty import FaultyServer, Rule, Script


@pytest.fixture
def queue(clock: Clock) -> Queue:
    mailout.configure({"EMAIL_QUEUE_URL": "memory:"})
    return Queue(clock=clock)


def messages(
    count: int, *, to: list[str] | None = None, body: str = "Hello"
) -> list[mailout.EmailMessage]:
    return [
        mailout.EmailMessage(
            f"Message {n}", body, "shop@example.com", to or [f"user{n}@example.com"]
        )
        for n in range(count)
    ]


def attempts(queue: Queue, id_: int) -> list[tuple[int, str, str | None, int | None]]:
    return [(e.attempt, e.kind, e.recipient, e.code) for e in queue.show(id_).events]


def test_every_message_goes_out_as_stored(queue: Queue, clock: Clock) -> None:
    with FaultyServer() as server:
        smtp_to(server)
        ids = queue.enqueue(messages(120))
        stored = {queue.show(i).summary.message_id: queue.show(i).data for i in ids}  # type: ignore[arg-type]
        worker = drain(queue.storage, clock)
    assert states(queue) == {"sent": 120}
    assert len(server.transactions) == 120
    for transaction in server.transactions:  # byte for byte what was rendered at enqueue
        parsed = email.message_from_bytes(transaction.content, policy=email.policy.default)
        assert transaction.content == stored[parsed["Message-ID"]]
        assert transaction.method == "BDAT"
    assert server.connections <= 4  # pipelined over the pool, not a connection per message
    detail = queue.show(ids[0])  # type: ignore[arg-type]
    [event] = detail.events
    assert (event.kind, event.code, event.enhanced, event.attempt) == ("sent", 250, "2.0.0", 1)
    assert event.relay_id is not None
    assert event.text == f"OK: queued as {event.relay_id}"
    assert (worker.totals.sent, worker.totals.deferred, worker.totals.failed) == (120, 0, 0)


def test_421_mid_batch_is_retried_on_a_new_connection(queue: Queue, clock: Clock) -> None:
    script = Script(rules=[Rule("MAIL", reply="421 4.3.2 too busy", after=3, times=1)])
    with FaultyServer(script) as server:
        smtp_to(server)
        ids = queue.enqueue(messages(10))
        drain(queue.storage, clock)
    assert states(queue) == {"sent": 10}
    assert {queue.show(i).summary.attempts for i in ids} == {1}  # type: ignore[arg-type]
    assert (len(server.transactions), server.connections) == (10, 2)


def test_421_that_persists_defers_the_rest_of_the_batch(queue: Queue, clock: Clock) -> None:
    # The pool tries a lost connection's messages twice more; a 421 on each try defers them.
    script = Script(rules=[Rule("MAIL", reply="421 4.3.2 too busy", after=3, times=3)])
    with FaultyServer(script) as server:
        smtp_to(server)
        ids = [i for i in queue.enqueue(messages(10)) if i is not None]
        drain(queue.storage, clock)
        assert states(queue) == {"sent": 3, "deferred": 7}
        later = [i for i in ids if queue.show(i).summary.state == State.DEFERRED]
        assert [queue.show(i).summary.due_at for i in later] == [T0 + 300] * 7
        assert attempts(queue, later[0]) == [(1, "deferred", "user3@example.com", None)]
        assert "ServerDisconnected" in queue.show(later[0]).events[0].text
        clock.advance(299)
        drain(queue.storage, clock)
        assert states(queue) == {"sent": 3, "deferred": 7}  # not due yet
        clock.advance(1)
        drain(queue.storage, clock)
    assert states(queue) == {"sent": 10}
    assert [queue.show(i).summary.attempts for i in ids] == [1, 1, 1] + [2] * 7
    assert len(server.transactions) == 10  # nobody got it twice
    assert server.connections == 4


def test_451_and_452_retry_only_those_recipients(queue: Queue, clock: Clock) -> None:
    script = Script(
        rules=[
            Rule(r"RCPT TO:<b@", reply="451 4.7.1 greylisted, try later", times=1),
            Rule(r"RCPT TO:<c@", reply="452 4.2.2 mailbox full", times=2),
        ]
    )
    with FaultyServer(script) as server:
        smtp_to(server)
        [id_] = queue.enqueue(messages(1, to=["a@example.com", "b@example.com", "c@example.com"]))
        assert id_ is not None
        drain(queue.storage, clock)
        summary = queue.show(id_).summary
        assert (summary.state, summary.pending, summary.due_at) == (
            State.DEFERRED,
            ("b@example.com", "c@example.com"),
            T0 + 300,
        )
        clock.advance(300)
        drain(queue.storage, clock)
        summary = queue.show(id_).summary
        assert (summary.pending, summary.due_at) == (("c@example.com",), T0 + 300 + 600)
        clock.advance(600)
        drain(queue.storage, clock)
    assert queue.show(id_).summary.state == State.SENT
    assert queue.show(id_).summary.attempts == 3
    assert attempts(queue, id_) == [
        (1, "sent", "a@example.com", 250),
        (1, "deferred", "b@example.com", 451),
        (1, "deferred", "c@example.com", 452),
        (2, "sent", "b@example.com", 250),
        (2, "deferred", "c@example.com", 452),
        (3, "sent", "c@example.com", 250),
    ]
    assert [t.recipients for t in server.transactions] == [
        ("a@example.com",),
        ("b@example.com",),
        ("c@example.com",),
    ]
    contents = {t.content for t in server.transactions}
    assert len(contents) == 1  # the same bytes, so the same Message-ID, on every attempt


def test_550_fails_at_once(queue: Queue, clock: Clock) -> None:
    script = Script(rules=[Rule(r"RCPT TO:<gone@", reply="550 5.1.1 no such user")])
    with FaultyServer(script) as server:
        smtp_to(server)
        partial, dead = queue.enqueue(
            [
                *messages(1, to=["a@example.com", "gone@example.com"]),
                *messages(1, to=["gone@example.com"]),
            ]
        )
        drain(queue.storage, clock)
        clock.advance(10_000)
        drain(queue.storage, clock)  # nothing is retried
    assert partial is not None
    assert dead is not None
    assert queue.show(partial).summary.state == State.SENT
    assert attempts(queue, partial) == [
        (1, "sent", "a@example.com", 250),
        (1, "failed", "gone@example.com", 550),
    ]
    summary = queue.show(dead).summary
    assert (summary.state, summary.attempts, summary.pending) == (
        State.FAILED,
        1,
        ("gone@example.com",),
    )
    assert summary.last_reply == "RecipientsRefusedError: 550 5.1.1 no such user"
    assert len(server.transactions) == 1


def test_a_connection_dropped_mid_bdat(queue: Queue, clock: Clock) -> None:
    # A 230 KB message: the server vanishes after 1 KB of its chunk. The client had handed the
    # whole chunk to the socket, so it cannot know how much arrived: DeliveryUnknownError, never
    # resent at once; the queue defers it and sends the same bytes again after the backoff.
    script = Script(rules=[Rule("BDAT", drop_after=1024, times=1)])
    with FaultyServer(script) as server:
        smtp_to(server)
        [id_] = queue.enqueue(messages(1, body=("x" * 76 + "\n") * 3000))
        assert id_ is not None
        drain(queue.storage, clock)
        [event] = queue.show(id_).events
        assert (event.kind, event.attempt) == ("deferred", 1)
        assert event.text.startswith("delivery unknown, the message may have arrived")
        assert server.transactions == []
        clock.advance(300)
        drain(queue.storage, clock)
    summary = queue.show(id_).summary
    assert (summary.state, summary.attempts) == (State.SENT, 2)
    assert len(server.transactions) == 1
    assert server.connections == 2


def timeouts_mailer(server: FaultyServer) -> None:
    mailout.configure(
        {
            "EMAIL_QUEUE_URL": "memory:",
            "EMAIL_QUEUE_MAILER": "relay",
            "MAILERS": {
                "relay": {
                    "BACKEND": "mailout.backends.smtp.EmailBackend",
                    "OPTIONS": {
                        "host": server.host,
                        "port": server.port,
                        "timeout": 0.3,
                        "data_done_timeout": 0.5,
                    },
                }
            },
        }
    )


@pytest.mark.parametrize(
    ("rule", "error"),
    [
        # No reply to EHLO: the connection times out before anything is sent.
        (Rule("EHLO", action="hang", times=1), "SMTPTimeoutError"),
        # The whole message went out; its reply never comes within data_done_timeout.
        (Rule(r"BDAT \d+ LAST", action="hang", times=1), "delivery unknown, the message may"),
    ],
)
def test_a_server_that_stops_answering_defers(
    queue: Queue, clock: Clock, rule: Rule, error: str
) -> None:
    with FaultyServer(Script(rules=[rule])) as server:
        timeouts_mailer(server)
        [id_] = queue.enqueue(messages(1))
        assert id_ is not None
        drain(queue.storage, clock)
        [event] = queue.show(id_).events
        assert (event.kind, event.attempt) == ("deferred", 1)
        assert event.text.startswith(error)
        clock.advance(300)
        drain(queue.storage, clock)
    assert (queue.show(id_).summary.state, queue.show(id_).summary.attempts) == (State.SENT, 2)
    assert len(server.transactions) == 1


def test_a_relay_that_is_down_defers_the_batch_with_one_error(queue: Queue, clock: Clock) -> None:
    port = free_port()
    mailout.configure(
        {
            "EMAIL_HOST": "127.0.0.1",
            "EMAIL_PORT": port,
            "EMAIL_TIMEOUT": 2.0,
            "EMAIL_QUEUE_URL": "memory:",
        }
    )
    ids = [i for i in queue.enqueue(messages(30)) if i is not None]
    recorder = Recorder()
    drain(queue.storage, clock, reporter=recorder, batch=100)
    assert states(queue) == {"deferred": 30}
    [batch] = recorder.named("batch-deferred")
    assert batch["count"] == 30
    assert "SMTPConnectError" in batch["error"]
    assert len({queue.show(i).events[0].text for i in ids}) == 1
    clock.advance(300)
    with FixedPortServer(port) as server:
        drain(queue.storage, clock, batch=100)
    assert states(queue) == {"sent": 30}
    assert {queue.show(i).summary.attempts for i in ids} == {2}
    assert len(server.transactions) == 30


def test_the_whole_schedule_until_expiry(queue: Queue, clock: Clock) -> None:
    script = Script(rules=[Rule(r"RCPT TO:<slow@", reply="451 4.7.1 come back later")])
    policy = RetryPolicy(lifetime=3000)
    with FaultyServer(script) as server:
        smtp_to(server)
        [id_] = queue.enqueue(messages(1, to=["slow@example.com"]))
        assert id_ is not None
        tried_at = []
        for _ in range(10):
            summary = queue.show(id_).summary
            if summary.state != State.DEFERRED and tried_at:
                break
            clock.now = max(clock.now, summary.due_at)
            tried_at.append(clock.now - T0)
            drain(queue.storage, clock, policy=policy)
    # 300, 600, 1200 s apart, then the last try moved to the moment of expiry.
    assert tried_at == [0, 300, 900, 2100, 3000]
    summary = queue.show(id_).summary
    assert (summary.state, summary.reason, summary.attempts) == (State.FAILED, "expired", 5)
    assert [e.kind for e in queue.show(id_).events] == ["deferred"] * 4 + ["expired"]
    rcpts = [c for c in server.commands if c.startswith("RCPT")]
    assert len(rcpts) == 5
