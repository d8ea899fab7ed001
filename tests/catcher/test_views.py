"""MessageViews: messages read once, off the event loop, kept by size, forgotten when deleted."""

from __future__ import annotations

import asyncio
import threading

import pytest

from mailout.catcher import parse
from mailout.catcher.store import MessageStore
from mailout.catcher.views import MessageViews


def raw(subject: str, size: int = 0) -> bytes:
    return f"Subject: {subject}\r\n\r\n".encode() + b"x" * size + b"\r\n"


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The thread names in which parse.read ran, one entry per read."""
    names: list[str] = []
    real = parse.read

    def counting(data: bytes) -> parse.Parsed:
        names.append(threading.current_thread().name)
        return real(data)

    monkeypatch.setattr(parse, "read", counting)
    return names


def test_a_message_is_read_once_in_a_worker_even_when_asked_at_once(reads: list[str]) -> None:
    with MessageStore() as store:
        message_id = store.add("a@x.test", ["b@x.test"], raw("one")).id
        reads.clear()  # the store read it to index it
        views = MessageViews(store)

        async def scenario() -> list[parse.Parsed | None]:
            return list(await asyncio.gather(*(views.read(message_id) for _ in range(5))))

        results = asyncio.run(scenario())
        again = asyncio.run(views.read(message_id))
        views.close()
    assert len(reads) == 1
    assert reads[0].startswith("mailout-read")  # never the event loop's thread
    assert all(r is results[0] for r in results)
    assert again is results[0]
    assert results[0] is not None
    assert results[0].header("Subject") == "one"


def test_least_recently_used_go_first_and_big_ones_are_not_kept() -> None:
    with MessageStore() as store:
        ids = [store.add("a@x.test", ["b@x.test"], raw(f"m{i}", 100)).id for i in range(4)]
        big = store.add("a@x.test", ["b@x.test"], raw("big", 1000)).id
        views = MessageViews(store, cache_bytes=300)

        async def scenario() -> None:
            for message_id in (ids[0], ids[1], ids[0], ids[2], big):
                await views.read(message_id)

        asyncio.run(scenario())
        assert views.cached == (ids[0], ids[2])  # ids[1] went first; big was never kept
        views.close()


def test_deleted_and_cleared_messages_are_forgotten() -> None:
    with MessageStore() as store:
        first, second = (store.add("a@x.test", ["b@x.test"], raw(s)).id for s in ("a", "b"))
        views = MessageViews(store)
        asyncio.run(views.read(first))
        asyncio.run(views.read(second))
        store.delete(first)
        assert views.cached == (second,)
        assert asyncio.run(views.read(first)) is None
        store.clear()
        assert views.cached == ()
        views.close()


def test_what_the_smtp_side_read_is_kept(reads: list[str]) -> None:
    with MessageStore() as store:
        data = raw("kept")
        parsed = parse.read(data)
        message_id = store.add("a@x.test", ["b@x.test"], data, parsed=parsed).id
        views = MessageViews(store)
        views.keep(message_id, len(data), parsed)
        assert asyncio.run(views.read(message_id)) is parsed
        views.close()
    assert len(reads) == 1  # the one above: neither the store nor the views read it again
