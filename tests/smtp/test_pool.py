"""The connection pool over real loopback servers: how many connections, reuse, caps, no loop.

How many connections a send uses does not depend on thread scheduling: each of the pool's
workers connects as it starts, before it takes any message, so a send of n messages opens
exactly min(pool size, ceil(n / batch size)) of them. Nothing here waits for time to pass.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest

import mailout
from mailout.backends.smtp import EmailBackend
from mailout.exceptions import SMTPConnectError
from mailout.smtp import Envelope, SendResult, SMTPClient
from mailout.smtp.pool import PoolOptions, SMTPPool
from tests.servers.faulty import FaultyServer, Script
from tests.servers.sink import SinkServer


def messages(count: int, prefix: str = "m") -> list[mailout.EmailMessage]:
    return [
        mailout.EmailMessage(
            f"{prefix}{i}", f"body of {prefix}{i}", "from@example.com", [f"{prefix}{i}@example.com"]
        )
        for i in range(count)
    ]


def recipients(srv: FaultyServer) -> Counter[str]:
    return Counter(r for t in srv.transactions for r in t.recipients)


def quits(srv: FaultyServer) -> int:
    return sum(1 for c in srv.commands if c.upper() == "QUIT")


def open_sessions(srv: FaultyServer, expected: int = 0, wait: float = 10.0) -> int:
    """Server sessions still open (the server's own count), once `expected` is reached or
    `wait` seconds have passed: the server notices a close a moment after the client."""
    deadline = time.monotonic() + wait
    while len(srv._tasks) != expected and time.monotonic() < deadline:
        time.sleep(0.005)
    return len(srv._tasks)


@pytest.fixture
def server() -> Iterator[FaultyServer]:
    with FaultyServer() as srv:
        yield srv


def backend(srv: FaultyServer | SinkServer, **options: object) -> EmailBackend:
    return EmailBackend(host=srv.host, port=srv.port, timeout=5.0, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(("size", "connections"), [(4, 4), (1, 1)])
def test_200_messages_spread_over_pool_size_connections(
    server: FaultyServer, size: int, connections: int
) -> None:
    sent = backend(server, pool_size=size).send_messages(messages(200))
    assert sent == 200
    assert server.connections == connections
    expected = Counter(f"m{i}@example.com" for i in range(200))
    assert recipients(server) == expected  # every message once, none twice
    assert open_sessions(server) == 0  # a closed backend closes what it opened
    assert server.errors == []


def test_the_connections_are_made_side_by_side() -> None:
    # The server greets no one until four sessions are open at once: a pool that waited for one
    # connection's greeting before making the next would time out instead.
    with FaultyServer(Script(greet_together=4)) as srv:
        assert backend(srv, pool_size=4).send_messages(messages(200)) == 200
        assert srv.connections == 4
        assert recipients(srv) == Counter(f"m{i}@example.com" for i in range(200))


def test_the_async_pool_connects_side_by_side_too() -> None:
    async def main() -> int:
        return await backend(srv, pool_size=4).asend_messages(messages(200))

    with FaultyServer(Script(greet_together=4)) as srv:
        assert asyncio.run(main()) == 200
        assert srv.connections == 4
        assert recipients(srv) == Counter(f"m{i}@example.com" for i in range(200))


def test_results_are_in_message_order(server: FaultyServer) -> None:
    b = backend(server, pool_size=4)
    b.send_messages(messages(120))
    assert len(b.results) == 120
    for i, result in enumerate(b.results):
        assert isinstance(result, SendResult)
        assert list(result.accepted) == [f"m{i}@example.com"]


@pytest.mark.parametrize("count", [1, 2, 50])
def test_a_send_of_at_most_one_batch_uses_one_connection(server: FaultyServer, count: int) -> None:
    # Django's send_mass_mail promises one connection for a batch of messages.
    assert (
        mailout.send_mass_mail(
            [(f"s{i}", "b", "f@example.com", [f"t{i}@example.com"]) for i in range(count)],
            connection=backend(server, pool_size=4),
        )
        == count
    )
    assert server.connections == 1
    assert len(server.transactions) == count


def test_one_more_than_a_batch_uses_a_second_connection(server: FaultyServer) -> None:
    assert backend(server, pool_size=4).send_messages(messages(51)) == 51
    assert server.connections == 2


def test_open_backend_reuses_its_connections_across_calls(server: FaultyServer) -> None:
    b = backend(server, pool_size=4)
    assert b.open() is True
    assert server.connections == 1  # open() connects one, so errors surface there
    assert b.send_messages(messages(200, "a")) == 200
    assert server.connections == 4
    assert b.send_messages(messages(200, "b")) == 200
    assert b.send_messages(messages(3, "c")) == 3
    assert server.connections == 4  # no new connection while the backend is open
    assert open_sessions(server, 4) == 4
    b.close()
    assert b.connection is None
    assert open_sessions(server) == 0
    assert len(server.transactions) == 403


def test_closed_backend_connects_anew_for_each_call(server: FaultyServer) -> None:
    b = backend(server, pool_size=2)
    assert b.send_messages(messages(2, "a")) == 2
    assert b.connection is None
    assert b.send_messages(messages(2, "b")) == 2
    assert server.connections == 2
    assert open_sessions(server) == 0


@pytest.mark.parametrize("opened", [False, True])
def test_closing_says_quit(opened: bool) -> None:
    # RFC 5321 §4.1.1.10: the client ends the session with QUIT (and reads the 221), it does
    # not just drop the connection.
    with FaultyServer() as srv:
        b = backend(srv, pool_size=2)
        if opened:
            b.open()
        b.send_messages(messages(60))
        b.close()
        assert open_sessions(srv) == 0
        assert srv.connections == 2
        assert quits(srv) == 2


def test_sink_counts_match_for_a_large_send() -> None:
    with SinkServer() as sink:
        assert backend(sink, pool_size=3).send_messages(messages(500)) == 500
        assert sink.count == 500
        assert 1 <= sink.connections <= 3


# -- the pool itself, with small options ---------------------------------------------------


def items(count: int) -> list[tuple[Envelope, bytes]]:
    return [
        (
            Envelope("from@example.com", (f"r{i}@example.com",)),
            f"Subject: {i}\r\n\r\nbody\r\n".encode(),
        )
        for i in range(count)
    ]


def pool(srv: FaultyServer, **options: object) -> SMTPPool:
    return SMTPPool(lambda: SMTPClient(srv.host, srv.port, timeout=5.0), PoolOptions(**options))  # type: ignore[arg-type]


def test_max_messages_retires_a_connection() -> None:
    with FaultyServer() as srv:
        p = pool(srv, size=1, batch_size=2, max_messages=4)
        outcomes = p.send_many(items(10))
        p.close()
        assert all(isinstance(o, SendResult) for o in outcomes)
        # 4 + 4 + 2 messages: a connection that has sent max_messages is replaced.
        assert srv.connections == 3
        assert len(srv.transactions) == 10


def test_max_messages_counts_across_calls() -> None:
    with FaultyServer() as srv:
        p = pool(srv, size=1, batch_size=10, max_messages=3)
        for _ in range(3):
            p.send_many(items(2))
        p.close()
        # 2 sent, reused for 2 more (4 >= 3: retired), then a new one for the last 2.
        assert srv.connections == 2
        assert len(srv.transactions) == 6


def test_max_age_retires_an_old_connection() -> None:
    with FaultyServer() as srv:
        p = pool(srv, size=1, max_age=0.2)
        p.send_many(items(1))
        p.send_many(items(1))
        assert srv.connections == 1  # young: reused
        time.sleep(0.3)
        p.send_many(items(1))
        p.close()
        assert srv.connections == 2
        assert len(srv.transactions) == 3


def test_pool_close_closes_idle_connections() -> None:
    with FaultyServer() as srv:
        p = pool(srv, size=2, batch_size=1)
        p.send_many(items(2))
        assert p.connections == 2
        p.close()
        assert p.connections == 0
        assert open_sessions(srv) == 0


@pytest.mark.parametrize(
    "options",
    [{"size": 0}, {"batch_size": 0}, {"max_messages": 0}, {"retries": -1}, {"max_age": 0}],
)
def test_bad_pool_options_are_refused(options: dict[str, int]) -> None:
    with pytest.raises(mailout.ImproperlyConfigured):
        PoolOptions(**options)


# -- the sync pool runs no event loop ------------------------------------------------------


def test_sync_backend_works_inside_a_running_event_loop(server: FaultyServer) -> None:
    """A sync pool that called asyncio.run() would fail here ("cannot be called from a
    running event loop"); its worker threads must not have a loop of their own either."""
    loops_seen: list[bool] = []
    b = backend(server, pool_size=4)
    make_client = b._make_client

    def recording_make_client() -> SMTPClient:
        try:
            asyncio.get_running_loop()
            loops_seen.append(True)
        except RuntimeError:
            loops_seen.append(False)
        return make_client()

    b._make_client = recording_make_client  # type: ignore[method-assign]

    async def main() -> int:
        loop = asyncio.get_running_loop()
        sent = b.send_messages(messages(200))  # blocking on purpose: no loop may be started
        assert asyncio.get_running_loop() is loop
        return sent

    assert asyncio.run(main()) == 200
    # Every client is made in a worker thread (send_messages() leaves connecting to the
    # pool's workers), and none of them has a running loop.
    assert loops_seen == [False] * 4
    assert len(server.transactions) == 200


def test_sync_pool_from_a_thread_of_a_running_loop(server: FaultyServer) -> None:
    async def main() -> int:
        return await asyncio.to_thread(backend(server, pool_size=2).send_messages, messages(60))

    threads_before = threading.active_count()
    assert asyncio.run(main()) == 60
    assert len(server.transactions) == 60
    assert threading.active_count() <= threads_before  # worker threads do not linger


# -- outcomes told as they come (the queue records deliveries while the rest are sent) ----------


def _items(count: int) -> list[tuple[Envelope, bytes]]:
    return [
        (
            Envelope("from@example.com", (f"r{i}@example.com",)),
            f"Subject: {i}\r\n\r\nx\r\n".encode(),
        )
        for i in range(count)
    ]


def test_send_many_tells_each_outcome_once_a_burst_at_a_time(server: FaultyServer) -> None:
    told: list[tuple[list[int], list[object]]] = []
    pool = SMTPPool(
        lambda: SMTPClient(server.host, server.port), PoolOptions(size=2, batch_size=10)
    )
    outcomes = pool.send_many(_items(35), on_results=lambda i, o: told.append((list(i), list(o))))
    pool.close()
    indices = [i for group, _ in told for i in group]
    assert sorted(indices) == list(range(35))  # every item, exactly once
    assert sorted(len(group) for group, _ in told) == [5, 10, 10, 10]  # one call per burst
    for group, said in told:
        assert said == [outcomes[i] for i in group]
    assert all(isinstance(o, SendResult) for o in outcomes)


def test_send_many_tells_the_connection_error_too() -> None:
    from tests.conftest import free_port

    told: list[int] = []
    pool = SMTPPool(lambda: SMTPClient("127.0.0.1", free_port(), timeout=2.0), PoolOptions())
    outcomes = pool.send_many(_items(3), on_results=lambda i, o: told.extend(i))
    assert sorted(told) == [0, 1, 2]
    assert all(isinstance(o, SMTPConnectError) for o in outcomes)


def test_the_async_pool_tells_outcomes_as_they_come(server: FaultyServer) -> None:
    from mailout.smtp import AsyncSMTPClient
    from mailout.smtp.pool import AsyncSMTPPool

    told: list[int] = []

    async def main() -> list[object]:
        pool = AsyncSMTPPool(
            lambda: AsyncSMTPClient(server.host, server.port), PoolOptions(size=3, batch_size=7)
        )
        try:
            return list(await pool.send_many(_items(20), on_results=lambda i, o: told.extend(i)))
        finally:
            await pool.aclose()

    outcomes = asyncio.run(main())
    assert sorted(told) == list(range(20))
    assert len(outcomes) == 20
