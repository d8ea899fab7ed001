"""Replies out of step: a server that answers before it was asked, or answers twice.

Replies are paired with commands by order alone (RFC 2920 §3.1), so one reply too many shifts
every answer after it onto the wrong message: the issue's hostile server sent ``250`` right
after ``354`` and the client reported message 1 sent (the server refused it) and message 2
refused (by message 1's stale ``550``). Each test here is a real server doing that, and checks
what it stored against what the caller was told.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

import mailout
from mailout.backends.smtp import EmailBackend
from mailout.exceptions import (
    DataRefusedError,
    DeliveryUnknownError,
    SMTPProtocolError,
)
from mailout.smtp import Envelope, SendResult
from tests.servers.faulty import FaultyServer, Rule, Script
from tests.servers.script import DEFAULT_EXTENSIONS
from tests.smtp.smtp_helpers import MakeClient

EARLY = b"250 2.0.0 early: before the content\r\n"


def _without(*names: str) -> tuple[str, ...]:
    return tuple(e for e in DEFAULT_EXTENSIONS if e.split()[0] not in names)


DATA_PATHS = {
    "data-chained": _without("CHUNKING"),
    "data-lockstep": _without("CHUNKING", "PIPELINING"),
}


def messages(count: int) -> list[mailout.EmailMessage]:
    return [
        mailout.EmailMessage(f"subject m{i}", f"body m{i}\n", "from@example.com", [f"m{i}@x.test"])
        for i in range(count)
    ]


def send(srv: FaultyServer, msgs: list[mailout.EmailMessage], driver: str = "sync") -> Any:
    b = EmailBackend(host=srv.host, port=srv.port, timeout=5.0, fail_silently=True)
    if driver == "sync":
        return b.send_messages(msgs), b
    return asyncio.run(b.asend_messages(msgs)), b


def copies(srv: FaultyServer) -> Counter[str]:
    return Counter(r for t in srv.transactions for r in t.recipients)


@pytest.mark.parametrize("driver", ["sync", "async"])
@pytest.mark.parametrize("extensions", list(DATA_PATHS.values()), ids=list(DATA_PATHS))
def test_250_right_after_354_is_caught_before_the_content_is_sent(
    extensions: tuple[str, ...], driver: str
) -> None:
    rules = [
        Rule("DATA", extra=EARLY, times=1),
        Rule(r"\.$", reply="550 5.7.1 content refused", times=1),
    ]
    with FaultyServer(Script(extensions=extensions, rules=rules)) as srv:
        count, b = send(srv, messages(2), driver)
        first, second = b.results
        # Not "sent" on the strength of the early 250, and the content never left, so the
        # outcome is known: not delivered.
        assert isinstance(first, SMTPProtocolError)
        assert not isinstance(first, DeliveryUnknownError)
        assert "before the command" in str(first)
        # Message 2 is not refused by message 1's stale 550: it never went out on that
        # connection (protocol errors are not retried by the pool).
        assert not isinstance(second, DataRefusedError)
        assert isinstance(second, SMTPProtocolError)
        assert count == 0
        assert srv.transactions == []
        assert srv.connections == 1


def test_250_right_after_354_with_a_single_pipelined_send(make_client: MakeClient) -> None:
    script = Script(extensions=DATA_PATHS["data-chained"], rules=[Rule("DATA", extra=EARLY)])
    with FaultyServer(script) as srv:

        async def scenario() -> None:
            async with make_client(srv.host, srv.port) as client:
                with pytest.raises(SMTPProtocolError, match="before the command"):
                    await client.send(Envelope("a@example.com", ("b@example.com",)), b"x")
                assert not client.is_connected

        asyncio.run(scenario())
        assert srv.transactions == []


def test_a_250_to_data_is_never_taken_for_its_354(make_client: MakeClient) -> None:
    # A reply to DATA is 354 or a refusal (RFC 5321 §4.3.2): a 250 answers something else.
    rules = [Rule("DATA", reply="250 2.0.0 fine")]
    with FaultyServer(Script(extensions=DATA_PATHS["data-lockstep"], rules=rules)) as srv:

        async def scenario() -> None:
            async with make_client(srv.host, srv.port) as client:
                with pytest.raises(SMTPProtocolError, match="250 to DATA"):
                    await client.send(Envelope("a@example.com", ("b@example.com",)), b"x")

        asyncio.run(scenario())
        assert srv.transactions == []


@pytest.mark.parametrize("driver", ["sync", "async"])
@pytest.mark.parametrize(
    "extra", [b"250 2.1.5 again\r\n", b"550 5.1.1 stale refusal\r\n"], ids=["250", "550"]
)
def test_an_extra_reply_inside_a_burst_makes_the_whole_burst_unknown(
    extra: bytes, driver: str
) -> None:
    # One write carries five whole transactions; the server answers m1's RCPT twice. Every
    # reply after it is shifted by one, and nothing says where: the replies of the burst
    # cannot be trusted, and every message in it was sent whole. Before, m1 was reported with
    # m0's or its own shifted replies (with "550": refused, though the server stored it).
    rules = [Rule(r"RCPT TO:<m1@", extra=extra)]
    with FaultyServer(Script(rules=rules)) as srv:
        count, b = send(srv, messages(5), driver)
        assert [type(r) for r in b.results] == [DeliveryUnknownError] * 5
        assert all(isinstance(r.__cause__, SMTPProtocolError) for r in b.results)
        assert count == 0
        assert copies(srv) == Counter(f"m{i}@x.test" for i in range(5))  # each once
        assert srv.connections == 1  # none resent


@pytest.mark.parametrize("extensions", list(DATA_PATHS.values()), ids=list(DATA_PATHS))
def test_an_extra_reply_after_the_final_one_makes_that_message_unknown(
    extensions: tuple[str, ...],
) -> None:
    # m0's final 250 is followed by a second reply: which of the two answered m0's content
    # cannot be known, and m0 was sent whole.
    rules = [Rule(r"\.$", extra=b"550 5.7.1 which one?\r\n", times=1)]
    with FaultyServer(Script(extensions=extensions, rules=rules)) as srv:
        count, b = send(srv, messages(3))
        assert isinstance(b.results[0], DeliveryUnknownError)
        assert isinstance(b.results[0].__cause__, SMTPProtocolError)
        # The others never had their content sent on that connection: plainly not delivered.
        assert [type(r) for r in b.results[1:]] == [SMTPProtocolError] * 2
        assert count == 0
        assert copies(srv) == Counter({"m0@x.test": 1})


def test_an_unsolicited_421_after_a_final_reply_leaves_it_standing() -> None:
    # RFC 5321 §3.8: a server may say 421 and close at any time; the reply before it stands,
    # and what was not sent yet goes on a new connection.
    rules = [Rule(r"\.$", extra=b"421 4.3.2 closing now\r\n", times=1)]
    with FaultyServer(Script(extensions=DATA_PATHS["data-lockstep"], rules=rules)) as srv:
        count, b = send(srv, messages(3))
        assert count == 3
        assert all(isinstance(r, SendResult) for r in b.results)
        assert copies(srv) == Counter(f"m{i}@x.test" for i in range(3))
        assert srv.connections == 2
