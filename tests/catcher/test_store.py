"""MessageStore: one suite, run against the in-memory and the SQLite-file storage."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailout.catcher.store import MessageStore, StoreEvent, address_key


def mail(subject: str = "Hello", body: str = "body text", **headers: str) -> bytes:
    lines = [f"Subject: {subject}"] + [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n" + body + "\r\n").encode()


@pytest.fixture(params=["memory", "sqlite"])
def store_path(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return ":memory:" if request.param == "memory" else str(tmp_path / "mail.db")


@pytest.fixture
def store(store_path: str) -> Iterator[MessageStore]:
    with MessageStore(store_path) as store:
        yield store


def test_add_returns_summary_and_keeps_raw_bytes(store: MessageStore) -> None:
    raw = mail("=?utf-8?q?Caf=C3=A9?=", From="Zoë <z@example.com>", To="a@example.com")
    raw += b"\xff\x00 binary tail\r\n"
    summary = store.add("z@example.com", ["a@example.com"], raw)
    assert summary.subject == "Café"
    assert summary.from_header == "Zoë <z@example.com>"
    assert summary.to_header == "a@example.com"
    assert summary.recipients == ("a@example.com",)
    assert summary.size == len(raw)
    assert abs(summary.received_at - time.time()) < 5
    assert store.raw(summary.id) == raw
    assert store.get(summary.id) == summary


def test_list_newest_first_with_total_and_paging(store: MessageStore) -> None:
    ids = [store.add("s@example.com", ["r@example.com"], mail(f"m{i}")).id for i in range(5)]
    total, page = store.list(limit=2, offset=1)
    assert total == 5
    assert [s.id for s in page] == [ids[3], ids[2]]
    assert store.list(limit=0) == (5, [])
    with pytest.raises(ValueError, match="negative"):
        store.list(limit=-1)


def test_filed_under_every_envelope_recipient_domain_case_insensitive(
    store: MessageStore,
) -> None:
    # Bcc travels in the envelope only: the header says nothing about bcc@, yet it is filed.
    first = store.add(
        "s@example.com", ["ana@Example.COM", "bcc@example.com"], mail(To="ana@example.com")
    )
    second = store.add("s@example.com", ["ana@example.com"], mail("two"))
    store.add("s@example.com", ["ANA@example.com"], mail("other local part"))
    total, page = store.list(to="ana@EXAMPLE.com")
    assert total == 2
    assert [s.id for s in page] == [second.id, first.id]
    assert [s.id for s in store.list(to="bcc@example.com")[1]] == [first.id]
    assert store.list(to="nobody@example.com") == (0, [])
    # the local part is compared exactly (RFC 5321 §2.4), so ANA@ is another inbox
    assert store.inboxes() == [
        ("ANA@example.com", 1),
        ("ana@example.com", 2),
        ("bcc@example.com", 1),
    ]


def test_inboxes_count_each_message_once_per_recipient(store: MessageStore) -> None:
    store.add("s@example.com", ["a@example.com", "a@EXAMPLE.com"], mail())
    store.add("s@example.com", ["a@example.com", "b@example.com"], mail())
    assert store.inboxes() == [("a@example.com", 2), ("b@example.com", 1)]


def test_address_key() -> None:
    assert address_key("Ana@Example.COM") == "Ana@example.com"
    assert address_key("<a@B.c>") == "a@b.c"
    assert address_key("postmaster") == "postmaster"


@pytest.mark.parametrize(
    ("query", "found"),
    [
        ("invoice", True),  # subject, any case
        ("INVOICE november", True),  # every word, anywhere
        ("zoë", True),  # From header display name
        ("envelope-only@example.com", True),  # envelope recipient
        ("sender@example.com", True),  # envelope sender
        ("hidden paragraph", True),  # body text (HTML)
        ("plain words", True),  # body text (plain)
        ("absent", False),
    ],
)
def test_search(store: MessageStore, query: str, found: bool) -> None:
    raw = (
        b"Subject: Your Invoice\r\nFrom: =?utf-8?q?Zo=C3=AB?= <z@example.com>\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: text/plain\r\n\r\nplain words for November\r\n"
        b"--b\r\nContent-Type: text/html\r\n\r\n<p>hidden <b>paragraph</b></p>\r\n--b--\r\n"
    )
    message = store.add("sender@example.com", ["envelope-only@example.com"], raw)
    store.add("x@example.com", ["y@example.com"], mail("unrelated"))
    total, page = store.list(q=query)
    assert (total, [s.id for s in page]) == ((1, [message.id]) if found else (0, []))


def test_delete_and_clear(store: MessageStore) -> None:
    a = store.add("s@example.com", ["r@example.com"], mail())
    store.add("s@example.com", ["r@example.com"], mail())
    assert store.delete(a.id) is True
    assert store.delete(a.id) is False
    assert store.get(a.id) is None
    assert store.raw(a.id) is None
    assert store.inboxes() == [("r@example.com", 1)]
    assert store.clear() == 1
    assert store.list() == (0, [])
    assert store.inboxes() == []
    # ids are never reused, so a web page never mixes an old message with a new one
    assert store.add("s@example.com", ["r@example.com"], mail()).id > a.id + 1


def test_subscribers_get_every_change_in_the_changing_thread(store: MessageStore) -> None:
    events: list[tuple[StoreEvent, str]] = []
    unsubscribe = store.subscribe(lambda e: events.append((e, threading.current_thread().name)))
    worker = threading.Thread(
        target=store.add, args=("s@example.com", ["r@example.com"], mail()), name="adder"
    )
    worker.start()
    worker.join()
    [(added, thread)] = events
    assert added.kind == "added"
    assert thread == "adder"
    store.delete(added.id or 0)
    store.clear()
    assert [e.kind for e, _ in events] == ["added", "deleted", "cleared"]
    assert events[-1][0].id is None
    unsubscribe()
    store.add("s@example.com", ["r@example.com"], mail())
    assert len(events) == 3


def test_max_messages_prunes_oldest(store_path: str) -> None:
    with MessageStore(store_path, max_messages=3) as store:
        events: list[StoreEvent] = []
        store.subscribe(events.append)
        ids = [store.add("s@example.com", ["r@example.com"], mail(f"{i}")).id for i in range(5)]
        total, page = store.list()
        assert total == 3
        assert [s.id for s in page] == ids[:1:-1]
        assert StoreEvent("deleted", ids[0]) in events
        assert store.inboxes() == [("r@example.com", 3)]


def test_max_age_prunes_old(store_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with MessageStore(store_path, max_age=60) as store:
        now = time.time()
        monkeypatch.setattr(time, "time", lambda: now - 120)
        old = store.add("s@example.com", ["r@example.com"], mail("old"))
        monkeypatch.setattr(time, "time", lambda: now)
        new = store.add("s@example.com", ["r@example.com"], mail("new"))
        assert [s.id for s in store.list()[1]] == [new.id]
        assert store.get(old.id) is None


def test_bad_limits() -> None:
    with pytest.raises(ValueError, match="max_messages"):
        MessageStore(max_messages=0)
    with pytest.raises(ValueError, match="max_age"):
        MessageStore(max_age=0)


def test_sqlite_file_survives_restart(tmp_path: Path) -> None:
    path = str(tmp_path / "mail.db")
    with MessageStore(path) as store:
        first = store.add("s@example.com", ["Ana@Example.com"], mail("kept"))
    with MessageStore(path) as store:
        assert store.get(first.id) == first
        assert store.raw(first.id) == mail("kept")
        assert store.inboxes() == [("Ana@example.com", 1)]
        assert store.add("s@example.com", ["r@example.com"], mail()).id == first.id + 1


def test_concurrent_adds_lose_nothing(store: MessageStore) -> None:
    def add_many(n: int) -> None:
        for i in range(50):
            store.add("s@example.com", [f"r{n}@example.com"], mail(f"{n}-{i}"))

    threads = [threading.Thread(target=add_many, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.list()[0] == 400
    assert all(count == 50 for _, count in store.inboxes())


def test_closed_store_refuses_use() -> None:
    store = MessageStore()
    store.close()
    store.close()
    with pytest.raises(RuntimeError, match="closed"):
        store.list()
