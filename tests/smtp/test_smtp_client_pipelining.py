"""Both drivers against a server that really pipelines: PIPELINING, CHUNKING, BDAT, SMTPUTF8."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from mailout.exceptions import (
    DataRefusedError,
    RecipientsRefusedError,
    SenderRefusedError,
    ServerDisconnected,
    SMTPSecurityError,
    SMTPTimeoutError,
)
from mailout.smtp import Envelope, SendResult
from tests.servers.faulty import FaultyServer, Rule, Script
from tests.smtp.smtp_helpers import MakeClient

BODY = b"Subject: t\r\n\r\n.leading dot\n\xc3\xa9 8bit\r\nend"
EXPECTED = b"Subject: t\r\n\r\n.leading dot\r\n\xc3\xa9 8bit\r\nend\r\n"
PIPELINING = ("PIPELINING", "CHUNKING", "8BITMIME", "SMTPUTF8", "SIZE 10485760",
              "ENHANCEDSTATUSCODES")  # fmt: skip
NO_CHUNKING = ("PIPELINING", "8BITMIME", "SMTPUTF8", "SIZE 1000000", "ENHANCEDSTATUSCODES")


def serve(*rules: Rule, **script: Any) -> FaultyServer:
    script.setdefault("extensions", PIPELINING)
    return FaultyServer(Script(rules=rules, **script))


def count_writes(client: Any) -> list[bytes]:
    """Record every write the client makes (the sync client is wrapped by SyncAsAsync)."""
    inner = getattr(client, "client", client)
    writes: list[bytes] = []
    original = inner._write

    if asyncio.iscoroutinefunction(original):

        async def spy(data: bytes) -> None:
            writes.append(data)
            await original(data)
    else:

        def spy(data: bytes) -> None:  # type: ignore[misc]
            writes.append(data)
            original(data)

    inner._write = spy
    return writes


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_bdat_single_write(make_client: MakeClient) -> None:
    with serve() as server:

        async def scenario() -> SendResult:
            async with make_client(server.host, server.port) as client:
                ext = client.extensions
                assert ext.pipelining
                assert ext.chunking
                assert ext.size == 10485760
                writes = count_writes(client)
                result = await client.send(
                    Envelope("a@example.com", ("b@example.com", "c@example.com"), eight_bit=True),
                    BODY,
                )
                assert len(writes) == 1
                assert writes[0].startswith(b"MAIL FROM:<a@example.com> SIZE=")
                assert b"BDAT " in writes[0]
                assert writes[0].endswith(EXPECTED)
                return result

        result = run(scenario())
    assert result.reply.code == 250
    assert result.reply.enhanced == "2.0.0"
    assert result.reply.command == "BDAT"
    (message,) = server.transactions
    assert message.method == "BDAT"
    assert message.content == EXPECTED
    assert message.recipients == ("b@example.com", "c@example.com")
    assert "BODY=8BITMIME" in message.mail_params


def test_send_many_is_one_write(make_client: MakeClient) -> None:
    items = [
        (Envelope("a@example.com", ("b@example.com",)), b"message 1"),
        (Envelope("a@example.com", ("nobody@example.com", "c@example.com")), b"message 2"),
        (Envelope("spammer@example.com", ("b@example.com",)), b"message 3"),
        (Envelope("a@example.com", ("nobody@example.com",)), b"message 4"),
        (Envelope("a@example.com", ("d@example.com",)), b"message 5"),
    ]
    refusals = [
        Rule(r"RCPT TO:<nobody@", reply="550 5.1.1 No such user"),
        Rule(r"MAIL FROM:<spammer@", reply="553 5.7.1 Go away"),
    ]
    with serve(*refusals) as server:

        async def scenario() -> list[Any]:
            async with make_client(server.host, server.port) as client:
                writes = count_writes(client)
                results = await client.send_many(items)
                assert len(writes) == 1  # every transaction in one burst
                # The connection is still in step: another message goes through.
                await client.send(Envelope("a@example.com", ("e@example.com",)), b"after")
                return [results, writes]

        results, writes = run(scenario())
    assert writes[0].count(b"BDAT ") == 5
    assert isinstance(results[0], SendResult)
    assert isinstance(results[1], SendResult)
    assert list(results[1].accepted) == ["c@example.com"]
    assert str(results[1].refused["nobody@example.com"]) == "550 5.1.1 No such user"
    assert isinstance(results[2], SenderRefusedError)
    assert results[2].reply.code == 553
    assert isinstance(results[3], RecipientsRefusedError)
    assert list(results[3].refused) == ["nobody@example.com"]
    assert isinstance(results[4], SendResult)
    got = [(m.sender, m.recipients, m.content) for m in server.transactions]
    assert got == [
        ("a@example.com", ("b@example.com",), b"message 1\r\n"),
        ("a@example.com", ("c@example.com",), b"message 2\r\n"),
        ("a@example.com", ("d@example.com",), b"message 5\r\n"),
        ("a@example.com", ("e@example.com",), b"after\r\n"),
    ]


def test_send_many_last_failure_resets(make_client: MakeClient) -> None:
    with serve(Rule(r"MAIL FROM:<spammer@", reply="550 no")) as server:

        async def scenario() -> list[Any]:
            async with make_client(server.host, server.port) as client:
                results: list[Any] = await client.send_many(
                    [
                        (Envelope("a@example.com", ("b@example.com",)), b"1"),
                        (Envelope("spammer@example.com", ("b@example.com",)), b"2"),
                    ]
                )
                await client.send(Envelope("a@example.com", ("b@example.com",)), b"3")
                return results

        results = run(scenario())
    assert isinstance(results[0], SendResult)
    assert isinstance(results[1], SenderRefusedError)
    assert [m.content for m in server.transactions] == [b"1\r\n", b"3\r\n"]
    assert server.commands.count("RSET") == 2


def test_refused_sender_inside_pipeline_no_desync(make_client: MakeClient) -> None:
    with serve(Rule(r"MAIL FROM:<spammer@", reply="550 5.7.1 refused")) as server:

        async def scenario() -> None:
            async with make_client(server.host, server.port) as client:
                with pytest.raises(SenderRefusedError) as info:
                    await client.send(Envelope("spammer@example.com", ("b@example.com",)), b"x")
                assert info.value.reply.command == "MAIL"
                assert info.value.reply.enhanced == "5.7.1"
                result = await client.send(Envelope("a@example.com", ("b@example.com",)), b"ok")
                assert result.reply.command == "BDAT"
                assert result.reply.code == 250

        run(scenario())
    assert [m.content for m in server.transactions] == [b"ok\r\n"]


def test_content_refused(make_client: MakeClient) -> None:
    with serve(Rule(r"BDAT \d+ LAST", reply="552 5.3.4 too big")) as server:

        async def scenario() -> None:
            async with make_client(server.host, server.port) as client:
                with pytest.raises(DataRefusedError) as info:
                    await client.send(Envelope("a@example.com", ("b@example.com",)), b"x")
                assert info.value.reply.code == 552
                assert client.is_connected

        run(scenario())
    assert server.transactions == []


@pytest.mark.parametrize("chunking", [True, False])
def test_pipelined_data_path(make_client: MakeClient, chunking: bool) -> None:
    """PIPELINING without CHUNKING (or chunking=False): MAIL+RCPT+DATA in one write."""
    with serve(extensions=NO_CHUNKING) as server:

        async def scenario() -> None:
            async with make_client(server.host, server.port, chunking=chunking) as client:
                writes = count_writes(client)
                await client.send(Envelope("a@example.com", ("b@example.com",)), BODY)
                assert len(writes) == 2
                assert writes[0].count(b"\r\n") == 3
                assert writes[0].endswith(b"DATA\r\n")
                results = await client.send_many(
                    [(Envelope("a@example.com", ("c@example.com",)), b"x")] * 2
                )
                assert all(isinstance(r, SendResult) for r in results)

        run(scenario())
    assert [m.method for m in server.transactions] == ["DATA"] * 3
    assert server.transactions[0].content == EXPECTED


def test_data_accepted_without_recipients_is_aborted(make_client: MakeClient) -> None:
    # RFC 2920 §3.1: the client must check DATA's reply even if every RCPT failed.
    rule = Rule(r"RCPT TO:<nobody@", reply="550 no")
    with serve(rule, extensions=NO_CHUNKING, data_without_recipients=True) as server:

        async def scenario() -> None:
            async with make_client(server.host, server.port) as client:
                with pytest.raises(RecipientsRefusedError):
                    await client.send(Envelope("a@example.com", ("nobody@example.com",)), b"x")
                await client.send(Envelope("a@example.com", ("b@example.com",)), b"next")

        run(scenario())
    assert [m.content for m in server.transactions] == [b"next\r\n"]
    assert server.commands[1:5] == [
        "MAIL FROM:<a@example.com> SIZE=3",
        "RCPT TO:<nobody@example.com>",
        "DATA",
        "RSET",  # after the lone "." that ended the unwanted data (read by the server, not listed)
    ]


def test_chunking_without_pipelining_is_lockstep(make_client: MakeClient) -> None:
    with serve(extensions=("CHUNKING", "SMTPUTF8")) as server:

        async def scenario() -> None:
            async with make_client(server.host, server.port) as client:
                writes = count_writes(client)
                result = await client.send(
                    Envelope("j\u00f6rg@example.com", ("b@example.com",), smtputf8=True), BODY
                )
                assert result.refused == {}
                assert len(writes) == 3  # MAIL, RCPT, BDAT LAST + content

        run(scenario())
    (message,) = server.transactions
    assert message.method == "BDAT"
    assert message.sender == "j\u00f6rg@example.com"
    assert message.mail_params == ("SMTPUTF8",)


def test_pipelining_disabled_by_option(make_client: MakeClient) -> None:
    with serve() as server:

        async def scenario() -> None:
            async with make_client(server.host, server.port, pipelining=False) as client:
                writes = count_writes(client)
                await client.send(Envelope("a@example.com", ("b@example.com",)), b"x")
                assert len(writes) == 3

        run(scenario())
    assert len(server.transactions) == 1


def test_421_closes_connection(make_client: MakeClient) -> None:
    with serve(Rule("MAIL", reply="421 4.3.2 going down")) as server:

        async def scenario() -> None:
            client = make_client(server.host, server.port)
            async with client:
                with pytest.raises(ServerDisconnected, match="421"):
                    await client.send(Envelope("a@example.com", ("b@example.com",)), b"x")
                assert not client.is_connected
            results = None
            async with make_client(server.host, server.port) as client:
                results = await client.send_many(
                    [(Envelope("a@example.com", ("b@example.com",)), b"x")] * 3
                )
            # A 421 is the server's answer: nothing after it in the burst was taken in, so
            # all three may be sent again (they are not "unknown").
            assert [type(r) for r in results] == [ServerDisconnected] * 3

        run(scenario())
    assert server.transactions == []


def _non_loopback_address() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: no packet is sent for UDP connect
        except OSError:
            return None
        address = str(probe.getsockname()[0])
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def test_auth_refused_over_plaintext_to_remote_host(make_client: MakeClient) -> None:
    address = _non_loopback_address()
    if address is None:
        pytest.skip("no non-loopback address on this machine")
    with FaultyServer(Script(extensions=(*PIPELINING, "AUTH PLAIN")), host="0.0.0.0") as server:

        async def scenario() -> None:
            client = make_client(address, server.port, username="u", password="hunter2")
            with pytest.raises(SMTPSecurityError, match="unencrypted") as info:
                await client.connect()
            assert "hunter2" not in str(info.value)
            assert not client.is_connected

        run(scenario())
    assert not any(c.startswith("AUTH") for c in server.commands)


def test_reply_timeout_closes_connection(make_client: MakeClient) -> None:
    # Lock-step (no PIPELINING): MAIL is its own round trip, bounded by `timeout`.
    with serve(Rule("MAIL", action="hang"), extensions=("CHUNKING",)) as server:

        async def scenario() -> None:
            async with make_client(server.host, server.port, timeout=0.3) as client:
                with pytest.raises(SMTPTimeoutError):
                    await client.send(Envelope("a@example.com", ("b@example.com",)), b"x")
                assert not client.is_connected

        run(scenario())


def test_sequential_server_advertising_pipelining(make_client: MakeClient) -> None:
    """Replies trickling in one segment at a time still pair with their commands."""
    rule = Rule(r"RCPT TO:<nobody@", reply="550 5.1.1 no")
    with serve(rule, lockstep=True, delay=0.005) as server:

        async def scenario() -> list[Any]:
            async with make_client(server.host, server.port) as client:
                results: list[Any] = await client.send_many(
                    [
                        (Envelope("a@example.com", ("nobody@example.com", "b@example.com")), b"1"),
                        (Envelope("a@example.com", ("c@example.com",)), b"2"),
                    ]
                )
                return results

        results = run(scenario())
    assert [list(r.accepted) for r in results] == [["b@example.com"], ["c@example.com"]]
    assert [m.content for m in server.transactions] == [b"1\r\n", b"2\r\n"]
