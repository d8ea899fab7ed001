"""PIPELINING without CHUNKING: content chained with the next envelope, one round trip each."""

from __future__ import annotations

import time

from mailout.exceptions import DataRefusedError, RecipientsRefusedError, SMTPUTF8NotSupportedError
from mailout.smtp import Envelope, SendResult, SMTPClient
from tests.servers.faulty import FaultyServer
from tests.servers.script import Rule, Script

NO_CHUNKING = ("PIPELINING", "8BITMIME", "SIZE 10485760", "ENHANCEDSTATUSCODES")


def item(n: int, to: str | None = None) -> tuple[Envelope, bytes]:
    body = f"Subject: m{n}\r\n\r\n.leading dot line {n}\r\n".encode()
    return Envelope("a@example.com", (to or f"b{n}@example.com",)), body


def test_messages_arrive_in_order_with_failures_in_between() -> None:
    script = Script(
        extensions=NO_CHUNKING,
        rules=[
            Rule(r"RCPT TO:<nobody@", reply="550 5.1.1 no such user"),
            Rule(r"\.$", reply="554 5.7.1 content refused", after=3, times=1),
        ],
    )
    items = [item(0), item(1), item(2, to="nobody@example.com"), item(3), item(4), item(5)]
    items.insert(3, (Envelope("a@example.com", ("josé@example.com",)), b"Subject: x\r\n\r\nx\r\n"))
    with FaultyServer(script) as server:
        client = SMTPClient(server.host, server.port)
        client.connect()
        results = client.send_many(items)
        client.close()
    kinds = [type(r).__name__ for r in results]
    assert kinds == [
        "SendResult",
        "SendResult",
        "RecipientsRefusedError",
        "SMTPUTF8NotSupportedError",  # refused locally: the server lacks SMTPUTF8
        "SendResult",
        "DataRefusedError",  # the fourth end-of-data the server saw
        "SendResult",
    ]
    assert isinstance(results[2], RecipientsRefusedError)
    assert isinstance(results[3], SMTPUTF8NotSupportedError)
    assert isinstance(results[5], DataRefusedError)
    assert all(isinstance(results[i], SendResult) for i in (0, 1, 4, 6))
    # Dot-stuffed on the wire, unstuffed by the server: the content arrives intact.
    assert [t.content.split(b"\r\n")[0] for t in server.transactions] == [
        b"Subject: m0",
        b"Subject: m1",
        b"Subject: m3",
        b"Subject: m5",
    ]
    assert b".leading dot line 5\r\n" in server.transactions[-1].content
    assert all(t.method == "DATA" for t in server.transactions)
    assert server.errors == []


def test_chaining_saves_round_trips() -> None:
    """Lower bounds and a comparison only: six messages cost about seven round trips chained,
    and four each in lock-step."""
    script = Script(extensions=NO_CHUNKING, delay=0.05)
    elapsed = {}
    for pipelining in (True, False):
        with FaultyServer(script) as server:
            client = SMTPClient(server.host, server.port, pipelining=pipelining)
            client.connect()
            started = time.monotonic()
            results = client.send_many([item(n) for n in range(6)])
            elapsed[pipelining] = time.monotonic() - started
            client.close()
            assert all(isinstance(r, SendResult) for r in results)
            assert len(server.transactions) == 6
    assert elapsed[True] >= 0.05 * 6
    assert elapsed[True] < elapsed[False]
