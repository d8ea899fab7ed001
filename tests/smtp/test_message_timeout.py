"""The whole-message timeout: a server that answers each reply in time but trickles."""

from __future__ import annotations

import time

import pytest

from mailout.exceptions import SMTPTimeoutError
from mailout.smtp import Envelope, SMTPClient
from tests.servers.faulty import FaultyServer
from tests.servers.script import Script

CONTENT = b"Subject: t\r\n\r\nbody\r\n"


def test_trickling_server_hits_the_message_timeout() -> None:
    # Each reply comes after 0.2 s, well inside the 2 s per-reply timeout; lock-step (no
    # PIPELINING) makes one transaction take at least four replies, 0.8 s, over the 0.5 s budget.
    script = Script(extensions=("8BITMIME",), delay=0.2)
    with FaultyServer(script) as server:
        client = SMTPClient(server.host, server.port, timeout=2.0, message_timeout=0.5)
        client.connect()
        started = time.monotonic()
        with pytest.raises(SMTPTimeoutError, match="message_timeout"):
            client.send(Envelope("a@example.com", ("b@example.com",)), CONTENT)
        assert time.monotonic() - started < 1.5
        assert not client.is_connected  # the session is in an unknown state: dropped
        assert server.transactions == []


def test_message_timeout_is_per_message_not_per_connection() -> None:
    script = Script(extensions=("8BITMIME",), delay=0.05)
    with FaultyServer(script) as server:
        client = SMTPClient(server.host, server.port, timeout=2.0, message_timeout=1.0)
        client.connect()
        for _ in range(6):  # about 0.2 s each: 1.2 s in all, yet no single message is late
            client.send(Envelope("a@example.com", ("b@example.com",)), CONTENT)
        client.close()
        assert len(server.transactions) == 6
