"""Hooks: pre_send changes or cancels; the others see committed outcomes; none stops a worker."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest

import mailout
from mailout.queue import ClaimedMessage, Hooks, Queue, Report, RetryPolicy, State
from mailout.queue.storage.sqlite import SQLiteStorage
from tests.queue import backends
from tests.queue.conftest import Clock
from tests.queue.helpers import drain, smtp_to
from tests.servers.faulty import FaultyServer, Rule, Script


@pytest.fixture
def server() -> FaultyServer:
    with FaultyServer(Script(rules=[Rule(r"RCPT TO:<later@", reply="451 4.7.1 later")])) as srv:
        yield srv  # type: ignore[misc]


def message(*to: str) -> mailout.EmailMessage:
    return mailout.EmailMessage("Hi", "Body", "shop@example.com", list(to))


def test_pre_send_suppresses_recipients(server: FaultyServer, clock: Clock) -> None:
    smtp_to(server, EMAIL_QUEUE_URL="memory:")
    queue = Queue(clock=clock)
    [id_] = queue.enqueue([message("ana@example.com", "bob@blocked.example")])
    drain(queue.storage, clock, hooks=Hooks(pre_send=[backends.suppress]))
    assert [t.recipients for t in server.transactions] == [("ana@example.com",)]
    detail = queue.show(id_)  # type: ignore[arg-type]
    assert detail.summary.state == State.SENT
    assert [(e.recipient, e.kind, e.text) for e in detail.events][1] == (
        "bob@blocked.example",
        "failed",
        "suppressed by a pre_send hook",
    )


def test_pre_send_cancels(server: FaultyServer, clock: Clock) -> None:
    smtp_to(server, EMAIL_QUEUE_URL="memory:")
    queue = Queue(clock=clock)
    [id_] = queue.enqueue([message("ana@example.com")])
    failed: list[Report] = []
    drain(queue.storage, clock, hooks=Hooks(pre_send=[lambda m: None], failed=[failed.append]))
    summary = queue.show(id_).summary  # type: ignore[arg-type]
    assert (summary.state, summary.reason) == (State.FAILED, "cancelled")
    assert server.transactions == []
    assert [r.outcome.reason for r in failed] == ["cancelled"]


def test_pre_send_may_change_the_bytes_sent(server: FaultyServer, clock: Clock) -> None:
    smtp_to(server, EMAIL_QUEUE_URL="memory:")
    queue = Queue(clock=clock)
    [id_] = queue.enqueue([message("ana@example.com")])

    def tag(m: ClaimedMessage) -> ClaimedMessage:
        return dataclasses.replace(m, data=b"X-Campaign: spring\r\n" + m.data)

    drain(queue.storage, clock, hooks=Hooks(pre_send=[tag]))
    [sent] = server.transactions
    stored = queue.show(id_).data  # type: ignore[arg-type]
    assert stored is not None
    assert sent.content == b"X-Campaign: spring\r\n" + stored


def test_a_pre_send_hook_that_raises_defers_and_the_worker_goes_on(
    server: FaultyServer, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    smtp_to(server, EMAIL_QUEUE_URL="memory:")
    queue = Queue(clock=clock)
    broken, fine = queue.enqueue([message("broken@example.com"), message("ana@example.com")])

    def lookup(m: ClaimedMessage) -> ClaimedMessage:
        if m.recipients[0].startswith("broken"):
            raise ConnectionError("the suppression list is down")
        return m

    with caplog.at_level(logging.ERROR, logger="mailout.queue"):
        drain(queue.storage, clock, hooks=Hooks(pre_send=[lookup]))
    assert queue.show(fine).summary.state == State.SENT  # type: ignore[arg-type]
    summary = queue.show(broken).summary  # type: ignore[arg-type]
    assert summary.state == State.DEFERRED
    assert "suppression list is down" in (summary.last_reply or "")
    assert "pre_send hook raised" in caplog.text


def test_post_hooks_run_after_the_commit(
    server: FaultyServer, clock: Clock, tmp_path: Path
) -> None:
    path = tmp_path / "q.db"
    smtp_to(server, EMAIL_QUEUE_URL=f"sqlite:///{path}")
    queue = Queue(clock=clock)
    ids = queue.enqueue([message("ana@example.com"), message("later@example.com")])
    seen: list[tuple[str, int, State]] = []

    def check(report: Report) -> None:
        # Another connection (another process would see the same) reads the committed state.
        with SQLiteStorage(path) as other:
            seen.append((report.outcome.event, report.id, other.get(report.id).summary.state))

    drain(queue.storage, clock, hooks=Hooks(sent=[check], deferred=[check]))
    assert sorted(seen) == [("deferred", ids[1], State.DEFERRED), ("sent", ids[0], State.SENT)]  # type: ignore[list-item]


def test_a_post_hook_that_raises_is_logged(
    server: FaultyServer, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    smtp_to(server, EMAIL_QUEUE_URL="memory:")
    queue = Queue(clock=clock)
    queue.enqueue([message("ana@example.com"), message("bo@example.com")])

    def boom(report: Report) -> None:
        raise RuntimeError("the analytics service is down")

    with caplog.at_level(logging.ERROR, logger="mailout.queue"):
        worker = drain(queue.storage, clock, hooks=Hooks(sent=[boom]))
    assert worker.totals.sent == 2
    logged = [r for r in caplog.records if "hook" in r.getMessage() and r.exc_info]
    assert [r.getMessage().split(" raised for ")[1] for r in logged] == [
        "message 1; the worker goes on",
        "message 2; the worker goes on",
    ]


def test_expired_hook(server: FaultyServer, clock: Clock) -> None:
    smtp_to(server, EMAIL_QUEUE_URL="memory:")
    queue = Queue(clock=clock)
    queue.enqueue([message("later@example.com")])
    expired: list[Report] = []
    policy = RetryPolicy(lifetime=100)
    drain(queue.storage, clock, hooks=Hooks(expired=[expired.append]), policy=policy)
    clock.advance(100)
    drain(queue.storage, clock, hooks=Hooks(expired=[expired.append]), policy=policy)
    [report] = expired
    assert (report.outcome.event, report.outcome.state, report.message.attempt) == (
        "expired",
        State.FAILED,
        2,
    )
    assert report.outcome.results[0].code == 451


def test_hooks_from_settings(server: FaultyServer, clock: Clock) -> None:
    backends.seen.clear()
    smtp_to(
        server,
        EMAIL_QUEUE_URL="memory:",
        EMAIL_QUEUE_HOOKS={
            "pre_send": "tests.queue.backends.suppress",
            "sent": ["tests.queue.backends.on_sent"],
            "failed": ["tests.queue.backends.on_failed"],
        },
    )
    queue = Queue(clock=clock)
    sent, cancelled = queue.enqueue([message("ana@example.com"), message("x@blocked.example")])
    worker = queue.worker(reporter=None, draw=lambda: 0.5, sleep=clock.sleep)
    assert worker.run(once=True, handle_signals=False) == 0
    assert sorted(backends.seen) == [("failed", cancelled), ("sent", sent)]
    mailout.configure(
        {
            "EMAIL_QUEUE_URL": "memory:",
            "EMAIL_QUEUE_HOOKS": {"sent": ["tests.queue.backends.nothing_here"]},
        }
    )
    with pytest.raises(mailout.ImproperlyConfigured, match=r"EMAIL_QUEUE_HOOKS\['sent'\]"):
        queue.worker()


def test_a_hook_that_writes_a_bad_address_fails_that_message_only(
    server: FaultyServer, clock: Clock
) -> None:
    smtp_to(server, EMAIL_QUEUE_URL="memory:")
    queue = Queue(clock=clock)
    bad, good = queue.enqueue([message("smuggle@example.com"), message("ana@example.com")])

    def smuggle(m: ClaimedMessage) -> ClaimedMessage:
        if m.recipients[0].startswith("smuggle"):
            return dataclasses.replace(m, recipients=("ok@example.com NOTIFY=NEVER",))
        return m

    drain(queue.storage, clock, hooks=Hooks(pre_send=[smuggle]))
    assert queue.show(good).summary.state == State.SENT  # type: ignore[arg-type]
    summary = queue.show(bad).summary  # type: ignore[arg-type]
    assert summary.state == State.FAILED
    assert "is not a mailbox an SMTP envelope can carry" in (summary.last_reply or "")
    assert [t.recipients for t in server.transactions] == [("ana@example.com",)]
