"""The fast sink accepts, counts and optionally keeps mail, in a thread or in a process."""

from __future__ import annotations

import smtplib
import time

import pytest

from tests.servers.sink import SinkCore, SinkMessage, SinkServer
from tests.servers.wire import RawClient

ENVELOPE = b"EHLO c\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n"


@pytest.mark.parametrize("process", [False, True], ids=["thread", "process"])
def test_smtplib_messages_are_counted_and_kept(process: bool) -> None:
    with SinkServer(keep=True, process=process) as sink:
        with smtplib.SMTP(sink.host, sink.port) as smtp:
            smtp.ehlo()
            for keyword in ("pipelining", "chunking", "8bitmime", "smtputf8", "size"):
                assert smtp.has_extn(keyword)
            for i in range(20):
                smtp.sendmail("a@example.com", ["b@example.com", "c@example.com"], b".%d\r\n" % i)
        assert sink.count == 20  # live, across the process boundary too
        assert sink.connections == 1
    assert len(sink.messages) == 20
    assert sink.messages[3] == SinkMessage(
        b"a@example.com", (b"b@example.com", b"c@example.com"), b".3\r\n"
    )


def test_pipelined_messages_and_bdat_on_the_wire() -> None:
    with SinkServer(keep=True) as sink, RawClient(sink.host, sink.port) as raw:
        raw.send(ENVELOPE + b"DATA\r\n")
        assert raw.codes(5) == [220, 250, 250, 250, 354]
        # The end of one message, a whole BDAT message and a DATA one, in one write.
        raw.send(
            b"..x\r\n.\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n"
            b"BDAT 3\r\nabcBDAT 2 LAST\r\nde"
            b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n.\r\nQUIT\r\n"
        )
        assert raw.codes(10) == [250, 250, 250, 250, 250, 250, 250, 354, 250, 221]
        assert raw.closed_by_peer()
    assert [m.content for m in sink.messages] == [b".x\r\n", b"abcde", b""]


def test_core_fed_whole_and_byte_by_byte_gives_the_same_replies() -> None:
    wire = (
        ENVELOPE + b"DATA\r\n.a\r\n..b\r\n\r\n.\r\n"
        b"RSET\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n"
        b"BDAT 5 LAST\r\n\r\n.\r\nNOOP\r\nDATA\r\nQUIT\r\ntrailing"
    )
    results = []
    for step in (len(wire), 1, 3):
        kept: list[SinkMessage | None] = []
        core = SinkCore(b"250 ehlo\r\n", kept.append, keep=True)
        replies = b"".join(core.feed(wire[i : i + step]) for i in range(0, len(wire), step))
        assert core.closing
        results.append((replies, kept))
    assert results[0] == results[1] == results[2]
    replies, kept = results[0]
    assert [line[:3] for line in replies.splitlines()] == [
        b"250", b"250", b"250", b"354", b"250", b"250", b"250", b"250", b"250", b"250", b"554",
        b"221",
    ]  # fmt: skip
    assert [m.content for m in kept if m] == [b"a\r\n.b\r\n\r\n", b"\r\n.\r\n"]


def test_delay_is_one_round_trip_per_batch() -> None:
    with SinkServer(delay=0.1) as sink, RawClient(sink.host, sink.port) as raw:
        began = time.monotonic()
        assert raw.reply()[0] == 220  # the greeting is delayed too
        assert time.monotonic() - began >= 0.1
        began = time.monotonic()
        raw.send(ENVELOPE)  # three pipelined commands: one round trip
        assert raw.codes(3) == [250, 250, 250]
        pipelined = time.monotonic() - began
        began = time.monotonic()
        for _ in range(3):  # lock-step: one round trip each
            raw.send(b"NOOP\r\n")
            assert raw.reply()[0] == 250
        lockstep = time.monotonic() - began
        # Lower bounds only (a loaded machine is slow, never fast); the comparison within one
        # test shows that a batch costs one delay while lock-step costs one per command.
        assert pipelined >= 0.1
        assert lockstep >= 0.3
        assert pipelined < lockstep


def test_throughput_over_one_connection() -> None:
    """Pipelined envelopes over a raw socket, 2,000 messages: all counted (speed is for bench/)."""
    n = 2000
    with SinkServer() as sink, RawClient(sink.host, sink.port) as raw:
        assert raw.reply()[0] == 220
        raw.send(b"EHLO c\r\n")
        raw.reply()
        message = b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nBDAT 100 LAST\r\n"
        for sent in range(100, n + 1, 100):  # 100 messages per write, then read the replies
            raw.send((message + b"x" * 100) * 100)
            while raw.received.count(b"queued") < sent:
                raw.recv()
        assert sink.count == n


def test_negative_delay_is_refused() -> None:
    with pytest.raises(ValueError, match="delay"):
        SinkServer(delay=-1)
