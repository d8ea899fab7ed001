"""The duplicate rule: a message whose final reply is lost is not sent twice (RFC 5321 §4.5.3.2.6).

Each scenario runs a real scripted server that is slow at, or loses, the reply to the end of
data, on each way of sending (BDAT bursts, chained DATA, lock-step DATA and BDAT) and with both
drivers, and checks the two sides: the copies the server stored, and what the caller was told.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

import mailout
from mailout.backends.smtp import EmailBackend
from mailout.exceptions import (
    DeliveryUnknownError,
    ServerDisconnected,
    SMTPError,
    SMTPTimeoutError,
)
from mailout.smtp import Envelope, SendResult
from tests.servers.faulty import FaultyServer, Rule, Script
from tests.servers.script import DEFAULT_EXTENSIONS
from tests.smtp.smtp_helpers import MakeClient


def _without(*names: str) -> tuple[str, ...]:
    return tuple(e for e in DEFAULT_EXTENSIONS if e.split()[0] not in names)


# way of sending -> (EHLO keywords, the rule pattern naming its end of data)
PATHS: dict[str, tuple[tuple[str, ...], str]] = {
    "bdat-burst": (DEFAULT_EXTENSIONS, r"BDAT \d+ LAST"),
    "data-chained": (_without("CHUNKING"), r"\.$"),
    "data-lockstep": (_without("CHUNKING", "PIPELINING"), r"\.$"),
    "bdat-lockstep": (_without("PIPELINING"), r"BDAT \d+ LAST"),
}
SLOW = 0.4  # seconds the server takes over an end of data
SHORT = 0.15  # a data_done_timeout well under that
# For the test where `timeout` bounds every other reply and must still be shorter than the end
# of data: generous enough for a loaded machine, since each reply needs less than a millisecond.
TIMEOUT, SLOWER = 0.4, 0.8


def messages(count: int) -> list[mailout.EmailMessage]:
    return [
        mailout.EmailMessage(f"subject m{i}", f"body m{i}\n", "from@example.com", [f"m{i}@x.test"])
        for i in range(count)
    ]


def copies(srv: FaultyServer) -> Counter[str]:
    return Counter(r for t in srv.transactions for r in t.recipients)


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """The server may store a message after the client gave up on it: wait for that."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the server never got there"
        time.sleep(0.02)


def send(driver: str, srv: FaultyServer, msgs: list[mailout.EmailMessage], **options: Any) -> Any:
    """Send through the backend, sync or async; return (count, backend)."""
    options.setdefault("timeout", 5.0)
    b = EmailBackend(host=srv.host, port=srv.port, fail_silently=True, **options)
    if driver == "sync":
        return b.send_messages(msgs), b
    return asyncio.run(b.asend_messages(msgs)), b


@pytest.fixture(params=list(PATHS))
def path(request: pytest.FixtureRequest) -> tuple[tuple[str, ...], str]:
    return PATHS[request.param]


@pytest.fixture(params=["sync", "async"])
def driver(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_a_slow_end_of_data_is_waited_for_not_resent(
    path: tuple[tuple[str, ...], str], driver: str
) -> None:
    # The reproduction: `timeout` is shorter than the server's end of data. Before,
    # the pool gave up, resent twice and reported failure: 3 copies, count 0. The end of data
    # has its own timeout (600 s by default), so one copy is stored and reported sent.
    extensions, end = path
    rules = [Rule(end, delay=SLOWER, times=1)]
    with FaultyServer(Script(extensions=extensions, rules=rules)) as srv:
        count, b = send(driver, srv, messages(2), timeout=TIMEOUT)
        assert count == 2
        assert copies(srv) == Counter({"m0@x.test": 1, "m1@x.test": 1})
        assert all(isinstance(r, SendResult) for r in b.results)
        assert srv.connections == 1


def test_a_timed_out_end_of_data_is_unknown_and_never_resent(
    path: tuple[tuple[str, ...], str], driver: str
) -> None:
    # data_done_timeout shorter than the server: the client gives up on m0's final reply. The
    # server stores it anyway, once; the caller is told the outcome is unknown.
    extensions, end = path
    script = Script(extensions=extensions, rules=[Rule(end, delay=SLOW, times=1)])
    with FaultyServer(script) as srv:
        count, b = send(driver, srv, messages(3), timeout=5.0, data_done_timeout=SHORT)
        unknown = b.results[0]
        assert isinstance(unknown, DeliveryUnknownError)
        assert isinstance(unknown.__cause__, SMTPTimeoutError)
        wait_for(lambda: copies(srv)["m0@x.test"] == 1)
        assert max(copies(srv).values()) == 1  # nothing twice
        if extensions == DEFAULT_EXTENSIONS:
            # One burst carried all three whole: each is unknown, none is resent, and the
            # server (which had them) stores each once.
            assert [type(r) for r in b.results] == [DeliveryUnknownError] * 3
            assert count == 0
            assert srv.connections == 1
            wait_for(lambda: len(srv.transactions) == 3)
        else:
            # m1 and m2 had not been sent: they go on a new connection.
            assert [type(r) for r in b.results] == [DeliveryUnknownError, SendResult, SendResult]
            assert count == 2
            assert srv.connections == 2
        # send_messages() has returned: nothing more can be resent. One copy of each at most.
        assert max(copies(srv).values()) == 1


def test_a_lost_final_reply_is_unknown_and_never_resent(
    path: tuple[tuple[str, ...], str], driver: str
) -> None:
    # The server stores m1, then the connection breaks before its final reply leaves.
    extensions, end = path
    script = Script(
        extensions=extensions, lockstep=True, rules=[Rule(end, action="lose", after=1, times=1)]
    )
    with FaultyServer(script) as srv:
        count, b = send(driver, srv, messages(4), timeout=5.0)
        assert [type(r) for r in b.results[:2]] == [SendResult, DeliveryUnknownError]
        assert isinstance(b.results[1].__cause__, ServerDisconnected)
        assert copies(srv)["m1@x.test"] == 1
        assert max(copies(srv).values()) == 1
        if extensions == DEFAULT_EXTENSIONS:
            # m2 and m3 were in the same burst, whole: unknown too (the server, which
            # dropped the connection, never stored them).
            assert [type(r) for r in b.results[2:]] == [DeliveryUnknownError] * 2
            assert count == 1
            assert srv.connections == 1
        else:
            assert [type(r) for r in b.results[2:]] == [SendResult] * 2  # on a new connection
            assert count == 3
            assert copies(srv) == Counter(f"m{i}@x.test" for i in range(4))
            assert srv.connections == 2


def test_a_connection_dropped_after_the_content_is_unknown(
    path: tuple[tuple[str, ...], str], driver: str
) -> None:
    # The server vanishes once it has the whole message, storing nothing: the client cannot
    # tell this from a lost reply, so it reports unknown rather than risk a second copy.
    extensions, end = path
    with FaultyServer(Script(extensions=extensions, rules=[Rule(end, action="drop")])) as srv:
        count, b = send(driver, srv, messages(1), timeout=5.0)
        assert count == 0
        [result] = b.results
        assert isinstance(result, DeliveryUnknownError)
        assert isinstance(result.__cause__, ServerDisconnected)
        assert srv.connections == 1
        assert srv.transactions == []


def test_the_backend_raises_it_unless_failing_silently() -> None:
    with FaultyServer(Script(rules=[Rule(r"BDAT \d+ LAST", action="lose")])) as srv:
        b = EmailBackend(host=srv.host, port=srv.port, timeout=5.0)
        with pytest.raises(DeliveryUnknownError, match="may have been delivered") as caught:
            b.send_messages(messages(1))
        assert b.results == [caught.value]
        assert isinstance(caught.value, SMTPError)
        assert len(srv.transactions) == 1


def test_the_default_is_ten_minutes() -> None:
    from mailout.smtp import DATA_DONE_TIMEOUT, SMTPClient

    assert DATA_DONE_TIMEOUT == 600.0
    assert SMTPClient("localhost").data_done_timeout == 600.0
    assert EmailBackend(host="localhost").data_done_timeout == 600.0
    assert (
        EmailBackend(host="localhost", data_done_timeout=5)._client_options()["data_done_timeout"]
        == 5
    )


# -- the client on its own -----------------------------------------------------------------


def test_client_send_reports_unknown_and_drops_the_connection(make_client: MakeClient) -> None:
    # MAIL, RCPT and BDAT LAST with the content went out in one write: the server has the whole
    # message, so silence is "outcome unknown", bounded by data_done_timeout, not `timeout`.
    with FaultyServer(Script(rules=[Rule("MAIL", action="hang")])) as server:

        async def scenario() -> None:
            client = make_client(server.host, server.port, timeout=5.0, data_done_timeout=SHORT)
            async with client:
                started = time.monotonic()
                with pytest.raises(DeliveryUnknownError) as caught:
                    await client.send(Envelope("a@example.com", ("b@example.com",)), b"x")
                assert time.monotonic() - started < 4.0  # not the 5 s of `timeout`
                assert isinstance(caught.value.__cause__, SMTPTimeoutError)
                assert not client.is_connected

        asyncio.run(scenario())


def test_client_send_many_marks_only_what_left_whole(make_client: MakeClient) -> None:
    # Lock-step DATA: m0 is answered, m1's final reply is lost; m2 was never sent.
    script = Script(
        extensions=_without("CHUNKING", "PIPELINING"), rules=[Rule(r"\.$", action="lose", after=1)]
    )
    items = [(Envelope("a@example.com", (f"m{i}@x.test",)), b"body %d" % i) for i in range(3)]
    with FaultyServer(script) as server:

        async def scenario() -> list[Any]:
            async with make_client(server.host, server.port) as client:
                return list(await client.send_many(items))

        results = asyncio.run(scenario())
    assert isinstance(results[0], SendResult)
    assert isinstance(results[1], DeliveryUnknownError)
    assert isinstance(results[2], ServerDisconnected)  # not sent: the caller may resend it
    assert not isinstance(results[2], DeliveryUnknownError)
    assert [t.content for t in server.transactions] == [b"body 0\r\n", b"body 1\r\n"]
