"""One suite, every storage: what the worker and the operators rely on from a queue store."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from mailout._canonical import CanonicalBytes
from mailout._units import Rate
from mailout.exceptions import MessageNotFound
from mailout.queue.limits import Limit
from mailout.queue.models import (
    ALL,
    NewMessage,
    Outcome,
    Priority,
    RecipientResult,
    State,
    WorkerInfo,
)
from mailout.queue.storage import Storage
from mailout.queue.storage._claim import CLAIM_WINDOW
from mailout.smtp._protocol import encode_bdat
from tests.queue.conftest import T0, new

W1, W2 = "worker-1", "worker-2"


def sent(claimed_id: int, attempt: int, recipient: str, *, relay: str = "R1") -> Outcome:
    result = RecipientResult(recipient, "sent", 250, "2.0.0", f"OK: queued as {relay}", relay)
    return Outcome(claimed_id, attempt, State.SENT, (result,), (), delivered=1, summary="250 OK")


def deferred(claimed_id: int, attempt: int, recipient: str, due: float) -> Outcome:
    result = RecipientResult(recipient, "deferred", 451, "4.7.1", "try later")
    return Outcome(
        claimed_id, attempt, State.DEFERRED, (result,), (recipient,), due_at=due, summary="451"
    )


def states(storage: Storage) -> dict[State, int]:
    return {s: n for s, n in storage.stats(now=T0).counts.items() if n}


# -- enqueue -----------------------------------------------------------------------------------


def test_enqueue_stores_every_field(storage: Storage) -> None:
    message = new(1, to=("a@example.com", "b@example.org"), metadata={"order": 42})
    [id_] = storage.enqueue([message], now=T0)
    detail = storage.get(id_)
    s = detail.summary
    assert (s.state, s.attempts, s.sender) == (State.QUEUED, 0, "sender@example.com")
    assert s.recipients == s.pending == ("a@example.com", "b@example.org")
    assert (s.subject, s.message_id, s.size) == ("message 1", "<1@test>", len(message.data))
    assert (s.created_at, s.queued_at, s.due_at, s.mailer) == (T0, T0, T0, "default")
    assert detail.data == message.data
    assert dict(detail.metadata) == {"order": 42}
    assert detail.events == ()


def test_enqueue_returns_ids_in_order(storage: Storage) -> None:
    ids = storage.enqueue([new(n) for n in range(5)], now=T0)
    assert len(set(ids)) == 5
    assert [storage.get(i).summary.subject for i in ids] == [f"message {n}" for n in range(5)]


def test_a_batch_is_all_or_nothing(storage: Storage) -> None:
    def batch() -> Iterator[NewMessage]:
        yield new(1)
        yield new(2)
        raise ValueError("bad input in the third message")

    with pytest.raises(ValueError, match="third"):
        storage.enqueue(batch(), now=T0)
    assert states(storage) == {}
    assert storage.list() == []


def test_idempotency_key_stores_once(storage: Storage) -> None:
    first = storage.enqueue([new(1, key="order-1")], now=T0)
    again = storage.enqueue([new(2, key="order-1"), new(3, key="order-2")], now=T0 + 1)
    assert again[0] == first[0]
    assert again[1] != first[0]
    assert storage.get(first[0]).summary.subject == "message 1"  # the first one wins
    assert states(storage) == {State.QUEUED: 2}
    same_batch = storage.enqueue([new(4, key="k"), new(5, key="k")], now=T0)
    assert same_batch[0] == same_batch[1]


def test_a_long_batch_mixing_keys_maps_every_id_to_its_message(storage: Storage) -> None:
    # Runs of messages without a key are stored together (SQLite: executemany, ids derived
    # from the largest one); a key interrupts a run; ids before the batch, purged or not,
    # must not shift anything.
    early = storage.enqueue([new(n) for n in range(-3, 0)], now=T0)
    storage.expire([early[-1]], now=T0)
    storage.purge([State.FAILED], before=T0 + 1)
    batch = [new(n, key=f"k{n % 7}" if n % 5 == 0 else None) for n in range(2_300)]
    ids = storage.enqueue(batch, now=T0)
    first_with_key: dict[str, int] = {}
    for n, message in enumerate(batch):
        if message.key is not None:
            first_with_key.setdefault(message.key, n)
    assert len(set(ids)) == 2_300 - (460 - 7)  # 460 keyed messages share 7 keys
    assert not set(ids) & set(early[:-1])  # (SQLite may reuse the purged one's)
    for n in [*range(0, 2_300, 37), 999, 1_000, 1_001, 1_999, 2_000, 2_299]:
        owner = first_with_key[batch[n].key] if batch[n].key is not None else n
        detail = storage.get(ids[n])
        assert detail.summary.subject == f"message {owner}"
        assert detail.data == batch[owner].data


# -- claiming ----------------------------------------------------------------------------------


def test_claim_takes_only_due_mail(storage: Storage) -> None:
    storage.enqueue([new(1, not_before=T0 + 60), new(2)], now=T0)
    [claimed] = storage.claim(worker=W1, limit=10, lease=30, now=T0)
    assert claimed.message_id == "<2@test>"
    assert storage.claim(worker=W1, limit=10, lease=30, now=T0 + 59) == []
    [later] = storage.claim(worker=W1, limit=10, lease=30, now=T0 + 60)
    assert later.message_id == "<1@test>"


def test_claimed_message_carries_what_delivery_needs(storage: Storage) -> None:
    message = new(7, to=("x@example.com",), metadata={"k": "v"})
    storage.enqueue([message], now=T0)
    [c] = storage.claim(worker=W1, limit=1, lease=30, now=T0)
    assert (c.attempt, c.sender, c.recipients, c.data) == (
        1,
        message.sender,
        ("x@example.com",),
        message.data,
    )
    assert (c.created_at, c.queued_at, c.delivered, c.corrupt) == (T0, T0, 0, None)
    assert dict(c.metadata) == {"k": "v"}
    assert c.envelope().recipients == ("x@example.com",)
    detail = storage.get(c.id)
    assert (detail.summary.state, detail.lease_owner, detail.lease_until) == (
        State.SENDING,
        W1,
        T0 + 30,
    )


def test_a_body_canonical_when_stored_is_not_scanned_again_and_others_are(
    storage: Storage,
) -> None:
    # A body with CRLF line ends only comes back marked so (the SMTP client skips its scan);
    # one with a bare LF or CR, or without a final CRLF, comes back as plain bytes, and is
    # normalised on its way to the wire.
    clean, with_fields = new(1), new(5, metadata={"order": 7})  # read back two ways
    bare_lf = replace(new(2), data=new(2).data.replace(b"\r\nbody", b"\nbody"))
    bare_cr = replace(new(3), data=new(3).data.replace(b"\r\nbody", b"\rbody"))
    unended = replace(new(4), data=new(4).data.removesuffix(b"\r\n"))
    stored = [clean, with_fields, bare_lf, bare_cr, unended]
    ids = storage.enqueue(stored, now=T0)
    claimed = {c.id: c for c in storage.claim(worker=W1, limit=5, lease=30, now=T0)}
    got = [claimed[i] for i in ids]
    assert [type(c.data) for c in got] == [CanonicalBytes, CanonicalBytes, bytes, bytes, bytes]
    assert [c.data for c in got] == [m.data for m in stored]
    assert dict(got[1].metadata) == {"order": 7}
    for c in got[2:]:
        wire = encode_bdat(c.data)
        assert wire.count(b"\r") == wire.count(b"\n") == wire.count(b"\r\n")
        assert wire.endswith(b"\r\n")


def test_two_workers_never_claim_the_same_message(storage: Storage) -> None:
    storage.enqueue([new(n) for n in range(10)], now=T0)
    first = storage.claim(worker=W1, limit=6, lease=30, now=T0)
    second = storage.claim(worker=W2, limit=6, lease=30, now=T0)
    assert len(first) == 6
    assert len(second) == 4
    assert not {m.id for m in first} & {m.id for m in second}
    assert storage.claim(worker=W1, limit=6, lease=30, now=T0) == []


def test_priority_orders_new_mail(storage: Storage) -> None:
    storage.enqueue(
        [new(1, priority=Priority.LOW), new(2), new(3, priority=Priority.HIGH), new(4)], now=T0
    )
    claimed = storage.claim(worker=W1, limit=4, lease=30, now=T0)
    assert [c.message_id for c in claimed] == ["<3@test>", "<2@test>", "<4@test>", "<1@test>"]


def _make_retries(
    storage: Storage, count: int, *, priority: Priority = Priority.NORMAL
) -> list[int]:
    ids = storage.enqueue([new(100 + n, priority=priority) for n in range(count)], now=T0)
    claimed = storage.claim(worker=W1, limit=count, lease=30, now=T0)
    storage.record(
        [deferred(c.id, c.attempt, c.recipients[0], T0 + 10) for c in claimed], worker=W1, now=T0
    )
    return ids


def test_retries_never_starve_new_mail(storage: Storage) -> None:
    retries = _make_retries(storage, 10)
    new_ids = storage.enqueue([new(n) for n in range(10)], now=T0 + 5)
    claimed = storage.claim(worker=W1, limit=6, lease=30, now=T0 + 20)
    ids = [c.id for c in claimed]
    assert len([i for i in ids if i in new_ids]) == 3
    assert len([i for i in ids if i in retries]) == 3
    assert ids[0] in new_ids
    assert ids[1] in retries


def test_one_side_takes_what_the_other_leaves(storage: Storage) -> None:
    retries = _make_retries(storage, 10)
    [new_id] = storage.enqueue([new(1)], now=T0 + 5)
    claimed = storage.claim(worker=W1, limit=6, lease=30, now=T0 + 20)
    assert [c.id for c in claimed].count(new_id) == 1
    assert len([c for c in claimed if c.id in retries]) == 5


def test_priority_orders_retries_too(storage: Storage) -> None:
    low = _make_retries(storage, 2, priority=Priority.LOW)
    high = _make_retries(storage, 2, priority=Priority.HIGH)
    claimed = storage.claim(worker=W1, limit=2, lease=30, now=T0 + 20)
    assert [c.id for c in claimed] == high
    assert {c.id for c in storage.claim(worker=W1, limit=2, lease=30, now=T0 + 20)} == set(low)


def test_claim_leaves_excluded_domains(storage: Storage) -> None:
    storage.enqueue([new(1, to=("a@busy.example",)), new(2, to=("b@free.example",))], now=T0)
    claimed = storage.claim(worker=W1, limit=5, lease=30, now=T0, exclude_domains={"busy.example"})
    assert [c.recipients for c in claimed] == [("b@free.example",)]


def test_mail_behind_a_long_run_of_left_out_mail_is_still_claimed(storage: Storage) -> None:
    # A mailer out of its daily quota, far more of its mail than a claim's window, then
    # another mailer's message: that one goes (a claim looks past the window when it must).
    bulk = [new(n, mailer="bulk") for n in range(CLAIM_WINDOW * 2 * 5)]
    storage.enqueue([*bulk, new(999, mailer="tx")], now=T0)
    limits = {"bulk": Limit(daily=1)}
    claimed = []
    for _ in range(3):
        claimed += storage.claim(worker=W1, limit=2, lease=30, now=T0, limits=limits)
    assert sorted(c.mailer for c in claimed) == ["bulk", "tx"]


# -- leases ------------------------------------------------------------------------------------


def test_an_expired_lease_makes_the_message_due_again(storage: Storage) -> None:
    storage.enqueue([new(1)], now=T0)
    [c] = storage.claim(worker=W1, limit=1, lease=10, now=T0)
    assert storage.release_expired(now=T0 + 9) == 0
    assert storage.release_expired(now=T0 + 11) == 1
    summary = storage.get(c.id).summary
    assert (summary.state, summary.due_at, summary.attempts) == (State.DEFERRED, T0 + 11, 1)
    assert [e.kind for e in storage.get(c.id).events] == ["lease-expired"]
    [again] = storage.claim(worker=W2, limit=1, lease=10, now=T0 + 11)
    assert (again.id, again.attempt) == (c.id, 2)
    # The first worker comes back to life: its result is refused, the new holder's is kept.
    assert storage.record([sent(c.id, 1, "rcpt1@example.com")], worker=W1, now=T0 + 12) == [False]
    assert storage.record([sent(c.id, 2, "rcpt1@example.com")], worker=W2, now=T0 + 12) == [True]
    assert storage.get(c.id).summary.state == State.SENT


def test_heartbeat_renews_every_lease_of_the_worker(storage: Storage) -> None:
    storage.enqueue([new(1), new(2)], now=T0)
    storage.claim(worker=W1, limit=2, lease=10, now=T0)
    info = WorkerInfo(W1, "host", 123, T0, T0 + 8, 2, 0, 0, 0)
    assert storage.heartbeat(info, lease=10, now=T0 + 8) == 2
    assert storage.release_expired(now=T0 + 15) == 0
    assert storage.release_expired(now=T0 + 19) == 2
    [worker] = storage.stats(now=T0 + 19).workers
    assert (worker.id, worker.pid, worker.in_flight) == (W1, 123, 2)
    storage.unregister(W1)
    assert storage.stats(now=T0 + 19).workers == ()


def test_release_gives_back_unattempted_claims(storage: Storage) -> None:
    retries = _make_retries(storage, 1)
    [fresh] = storage.enqueue([new(1)], now=T0)
    claimed = storage.claim(worker=W1, limit=5, lease=30, now=T0 + 20)
    assert storage.release([c.id for c in claimed], worker=W2, now=T0 + 20) == 0  # not W2's
    assert storage.release([c.id for c in claimed], worker=W1, now=T0 + 20) == 2
    assert storage.get(fresh).summary.state == State.QUEUED
    assert storage.get(fresh).summary.attempts == 0
    assert storage.get(retries[0]).summary.state == State.DEFERRED
    assert storage.get(retries[0]).summary.attempts == 1


# -- recording ---------------------------------------------------------------------------------


def test_record_keeps_every_recipient_reply(storage: Storage) -> None:
    [id_] = storage.enqueue(
        [new(1, to=("a@example.com", "b@example.com", "c@example.com"))], now=T0
    )
    [c] = storage.claim(worker=W1, limit=1, lease=30, now=T0)
    results = (
        RecipientResult("a@example.com", "sent", 250, "2.0.0", "OK: queued as Q1", "Q1"),
        RecipientResult("b@example.com", "deferred", 452, "4.2.2", "mailbox full"),
        RecipientResult("c@example.com", "failed", 550, "5.1.1", "no such user"),
    )
    outcome = Outcome(
        id_, c.attempt, State.DEFERRED, results, ("b@example.com",), T0 + 300, 1, None, "mixed"
    )
    assert storage.record([outcome], worker=W1, now=T0 + 1) == [True]
    detail = storage.get(id_)
    assert detail.summary.state == State.DEFERRED
    assert detail.summary.pending == ("b@example.com",)
    assert detail.summary.recipients == ("a@example.com", "b@example.com", "c@example.com")
    assert (detail.summary.due_at, detail.summary.last_reply) == (T0 + 300, "mixed")
    assert detail.lease_owner is None
    rows = [
        (e.kind, e.recipient, e.code, e.enhanced, e.text, e.relay_id, e.attempt)
        for e in detail.events
    ]
    assert rows == [
        ("sent", "a@example.com", 250, "2.0.0", "OK: queued as Q1", "Q1", 1),
        ("deferred", "b@example.com", 452, "4.2.2", "mailbox full", None, 1),
        ("failed", "c@example.com", 550, "5.1.1", "no such user", None, 1),
    ]
    # The next attempt carries only the recipient still to deliver, and what was delivered.
    [again] = storage.claim(worker=W1, limit=1, lease=30, now=T0 + 300)
    assert (again.recipients, again.attempt, again.delivered) == (("b@example.com",), 2, 1)


def test_record_only_by_the_lease_holder(storage: Storage) -> None:
    storage.enqueue([new(1)], now=T0)
    [c] = storage.claim(worker=W1, limit=1, lease=30, now=T0)
    assert storage.record([sent(c.id, c.attempt, c.recipients[0])], worker=W2, now=T0) == [False]
    assert storage.record([sent(c.id, c.attempt + 1, c.recipients[0])], worker=W1, now=T0) == [
        False
    ]
    assert storage.get(c.id).summary.state == State.SENDING
    assert storage.get(c.id).events == ()


def test_bodies_of_sent_mail_are_dropped_when_asked(storage: Storage) -> None:
    storage.enqueue([new(1), new(2)], now=T0)
    a, b = storage.claim(worker=W1, limit=2, lease=30, now=T0)
    storage.record(
        [sent(a.id, 1, a.recipients[0]), deferred(b.id, 1, b.recipients[0], T0 + 300)],
        worker=W1,
        now=T0,
        keep_body=False,
    )
    assert storage.get(a.id).data is None
    assert storage.get(b.id).data == b.data  # still needed for the retry


def test_next_due(storage: Storage) -> None:
    assert storage.next_due(now=T0) is None
    storage.enqueue([new(1, not_before=T0 + 50, mailer="bulk"), new(2, not_before=T0 + 70)], now=T0)
    assert storage.next_due(now=T0) == T0 + 50
    assert storage.next_due(now=T0, exclude_mailers={"bulk"}) == T0 + 70


# -- rate limits -------------------------------------------------------------------------------


def test_a_rate_limit_is_shared_by_every_worker(storage: Storage) -> None:
    storage.enqueue([new(n, mailer="ses") for n in range(10)], now=T0)
    limits = {"ses": Limit(Rate(2, 1.0))}
    assert len(storage.claim(worker=W1, limit=10, lease=30, now=T0, limits=limits)) == 2
    assert storage.claim(worker=W2, limit=10, lease=30, now=T0, limits=limits) == []
    assert len(storage.claim(worker=W2, limit=10, lease=30, now=T0 + 0.5, limits=limits)) == 1
    assert (
        len(storage.claim(worker=W1, limit=10, lease=30, now=T0 + 10, limits=limits)) == 2
    )  # burst 2
    bucket = storage.bucket("ses")
    assert bucket is not None
    assert bucket.day_count == 5


def test_limits_apply_to_their_mailer_only(storage: Storage) -> None:
    storage.enqueue([new(n, mailer="ses") for n in range(5)], now=T0)
    storage.enqueue([new(10 + n, mailer="smtp") for n in range(5)], now=T0)
    limits = {"ses": Limit(Rate(1, 1.0))}
    claimed = storage.claim(worker=W1, limit=10, lease=30, now=T0, limits=limits)
    assert sorted(c.mailer for c in claimed) == ["ses", "smtp", "smtp", "smtp", "smtp", "smtp"]


def test_star_limits_each_mailer_separately(storage: Storage) -> None:
    storage.enqueue([new(n, mailer=m) for m in ("a", "b") for n in range(5)], now=T0)
    claimed = storage.claim(
        worker=W1, limit=10, lease=30, now=T0, limits={"*": Limit(Rate(2, 1.0))}
    )
    assert sorted(c.mailer for c in claimed) == ["a", "a", "b", "b"]


def test_daily_quota(storage: Storage) -> None:
    storage.enqueue([new(n, mailer="ses") for n in range(10)], now=T0)
    limits = {"ses": Limit(daily=3)}
    assert len(storage.claim(worker=W1, limit=2, lease=30, now=T0, limits=limits)) == 2
    assert len(storage.claim(worker=W1, limit=5, lease=30, now=T0 + 1, limits=limits)) == 1
    assert storage.claim(worker=W1, limit=5, lease=30, now=T0 + 2, limits=limits) == []
    assert len(storage.claim(worker=W1, limit=5, lease=30, now=T0 + 86400, limits=limits)) == 3


# -- operators ---------------------------------------------------------------------------------


def test_stats(storage: Storage) -> None:
    retries = _make_retries(storage, 2)
    storage.enqueue([new(1), new(2, not_before=T0 + 500)], now=T0 + 1)
    [c] = storage.claim(worker=W2, limit=1, lease=30, now=T0 + 2)
    failure = RecipientResult(c.recipients[0], "failed", 550, "5.1.1", "no such user")
    storage.record(
        [Outcome(c.id, c.attempt, State.FAILED, (failure,), c.recipients, summary="550 no")],
        worker=W2,
        now=T0 + 3,
    )
    stats = storage.stats(now=T0 + 4)
    assert {s: n for s, n in stats.counts.items() if n} == {
        State.QUEUED: 1,
        State.DEFERRED: 2,
        State.FAILED: 1,
    }
    assert set(stats.counts) == set(State)
    assert stats.oldest_due == T0 + 10  # the retries' due time comes before T0 + 500
    assert stats.next_retry == T0 + 10
    assert [f.id for f in stats.recent_failures] == [c.id]
    assert stats.recent_failures[0].last_reply == "550 no"
    data = stats.as_json(T0 + 4)
    assert {k: data[k] for k in ("queued", "deferred", "sending", "sent", "failed")} == {
        "queued": 1,
        "deferred": 2,
        "sending": 0,
        "sent": 0,
        "failed": 1,
    }
    assert retries


def test_list_and_get(storage: Storage) -> None:
    ids = storage.enqueue([new(n) for n in range(3)], now=T0)
    assert [m.id for m in storage.list()] == ids[::-1]
    storage.claim(worker=W1, limit=1, lease=30, now=T0)
    assert [m.id for m in storage.list(state=State.SENDING)] == [ids[0]]
    assert [m.id for m in storage.list(state=State.QUEUED, limit=1)] == [ids[2]]
    with pytest.raises(MessageNotFound, match="no message 999"):
        storage.get(999)


def test_hold_and_release(storage: Storage) -> None:
    retries = _make_retries(storage, 1)
    ids = storage.enqueue([new(1), new(2)], now=T0)
    assert storage.hold([ids[0], retries[0], 999], now=T0 + 1) == 2
    assert storage.claim(worker=W1, limit=10, lease=30, now=T0 + 20) != []
    assert {s.id for s in storage.list(state=State.HELD)} == {ids[0], retries[0]}
    assert storage.unhold(ALL, now=T0 + 30) == 2
    assert storage.get(ids[0]).summary.state == State.QUEUED
    assert storage.get(retries[0]).summary.state == State.DEFERRED
    assert [e.kind for e in storage.get(ids[0]).events] == ["held", "released"]


def test_hold_all_takes_only_waiting_mail(storage: Storage) -> None:
    storage.enqueue([new(1), new(2)], now=T0)
    storage.claim(worker=W1, limit=1, lease=30, now=T0)
    assert storage.hold(ALL, now=T0) == 1


def test_expire(storage: Storage) -> None:
    ids = storage.enqueue([new(1), new(2), new(3)], now=T0)
    storage.hold([ids[2]], now=T0)
    assert storage.expire([ids[0], ids[2]], now=T0 + 1) == 2
    summary = storage.get(ids[0]).summary
    assert (summary.state, summary.reason) == (State.FAILED, "expired")
    assert storage.get(ids[2]).summary.state == State.FAILED
    assert storage.expire(ALL, now=T0 + 2) == 1


def test_retry_deferred_and_failed(storage: Storage) -> None:
    retries = _make_retries(storage, 2)
    storage.expire([retries[1]], now=T0 + 1)
    assert storage.retry([retries[0]], now=T0 + 2) == 1
    assert storage.get(retries[0]).summary.due_at == T0 + 2
    assert storage.retry((), now=T0 + 3, failed_only=True) == 1
    again = storage.get(retries[1]).summary
    assert (again.state, again.due_at, again.queued_at, again.reason) == (
        State.DEFERRED,
        T0 + 3,
        T0 + 3,
        None,
    )
    assert storage.retry(ALL, now=T0 + 4) == 2
    assert len(storage.claim(worker=W1, limit=5, lease=30, now=T0 + 4)) == 2


def test_purge_in_batches(storage: Storage) -> None:
    ids = storage.enqueue([new(n, key=f"k{n}") for n in range(7)], now=T0)
    claimed = storage.claim(worker=W1, limit=7, lease=30, now=T0)
    storage.record([sent(c.id, 1, c.recipients[0]) for c in claimed[:5]], worker=W1, now=T0 + 10)
    storage.record([sent(c.id, 1, c.recipients[0]) for c in claimed[5:]], worker=W1, now=T0 + 100)
    assert storage.purge([State.SENT], before=T0 + 50, batch=2) == 5
    assert {m.id for m in storage.list()} == set(ids[5:])
    with pytest.raises(MessageNotFound):
        storage.get(ids[0])
    # A purged key may be used again.
    assert storage.enqueue([new(0, key="k0")], now=T0 + 200)[0] not in ids
