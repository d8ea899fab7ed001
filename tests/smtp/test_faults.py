"""The backend against a scripted, fault-injecting server: what was accepted, what we were told.

Each scenario checks both sides: the server's `transactions` (what was really accepted, and
that nothing was accepted twice) and the caller's view (`backend.results`, the count returned,
the exception raised).
"""

from __future__ import annotations

import pickle
import time
from collections import Counter

import pytest

import mailout
from mailout.backends.smtp import EmailBackend
from mailout.exceptions import (
    DataRefusedError,
    DeliveryUnknownError,
    RecipientsRefusedError,
    ReplyError,
    SenderRefusedError,
    ServerDisconnected,
    SMTPConnectError,
    SMTPError,
    SMTPProtocolError,
    SMTPTimeoutError,
)
from mailout.smtp import SendResult
from tests.servers.faulty import FaultyServer, Rule, Script
from tests.servers.script import DEFAULT_EXTENSIONS

NO_CHUNKING = tuple(e for e in DEFAULT_EXTENSIONS if e != "CHUNKING")
BIG_LINES = 290_000  # 31 bytes each: 9 MB, under the server's SIZE of 10 MB


def messages(count: int, prefix: str = "m") -> list[mailout.EmailMessage]:
    return [
        mailout.EmailMessage(
            f"subject {prefix}{i}",
            f"body of {prefix}{i}\n" * 20,
            "from@example.com",
            [f"{prefix}{i}@example.com"],
        )
        for i in range(count)
    ]


def backend(srv: FaultyServer, **options: object) -> EmailBackend:
    options.setdefault("timeout", 5.0)
    return EmailBackend(host=srv.host, port=srv.port, **options)  # type: ignore[arg-type]


def delivered(srv: FaultyServer) -> Counter[str]:
    """How many times each recipient's message was accepted by the server."""
    return Counter(r for t in srv.transactions for r in t.recipients)


def once_each(count: int, prefix: str = "m") -> Counter[str]:
    return Counter(f"{prefix}{i}@example.com" for i in range(count))


def subject_of(content: bytes) -> str:
    for line in content.split(b"\r\n"):
        if line.startswith(b"Subject: "):
            return line[9:].decode()
    raise AssertionError(f"no Subject in {content[:200]!r}")


# -- lost connections: resend what got no final reply, only that ---------------------------


@pytest.mark.parametrize(
    ("extensions", "match"),
    [(NO_CHUNKING, "DATA"), (DEFAULT_EXTENSIONS, r"BDAT \d+ LAST")],
    ids=["mid-DATA", "mid-BDAT"],
)
def test_dropped_mid_content_resends_on_a_new_connection(
    extensions: tuple[str, ...], match: str
) -> None:
    # lockstep: replies to messages 0 and 1 leave the server before it vanishes in message 2,
    # so the client knows exactly which were accepted. Message 2 (9 MB) is far bigger than what
    # the socket buffers of both ends can hold, so the client is still writing it when the
    # server vanishes: its write fails, the content never left whole, and it may be resent.
    # (Had the whole content been handed over, its outcome would be unknown: see
    # tests/smtp/test_lost_final_reply.py.)
    script = Script(
        extensions=extensions,
        lockstep=True,
        rules=[Rule(match, drop_after=1000, after=2, times=1)],
    )
    msgs = messages(6)
    msgs[2].body = "a long line of the big message\n" * BIG_LINES
    with FaultyServer(script) as srv:
        b = backend(srv, pool_size=1)
        assert b.send_messages(msgs) == 6
        assert delivered(srv) == once_each(6)  # the dropped one arrives once, none twice
        assert srv.connections == 2
        # 0 and 1 were accepted on the first connection and not resent.
        assert [subject_of(t.content) for t in srv.transactions[:2]] == ["subject m0", "subject m1"]
        big = next(t for t in srv.transactions if t.recipients == ("m2@example.com",))
        assert big.content.count(b"a long line of the big message") == BIG_LINES
        assert all(isinstance(r, SendResult) for r in b.results)
        assert srv.errors == []


@pytest.mark.parametrize(
    ("rule", "accepted_first"),
    [
        (Rule("MAIL", reply="421 4.7.0 too many messages", after=2, times=1), 2),
        (Rule(r"RCPT TO:<m3@", reply="421 4.3.2 shutting down", times=1), 3),
        (Rule(r"BDAT \d+ LAST", reply="421 4.4.5 try again later", after=4, times=1), 4),
    ],
    ids=["after-MAIL", "at-RCPT", "at-end-of-message"],
)
def test_421_mid_batch_resends_the_rest_on_a_new_connection(
    rule: Rule, accepted_first: int
) -> None:
    with FaultyServer(Script(rules=[rule])) as srv:
        b = backend(srv, pool_size=1)
        assert b.send_messages(messages(8)) == 8
        assert delivered(srv) == once_each(8)
        assert srv.connections == 2
        # The first connection got exactly the messages before the 421, in order.
        subjects = [subject_of(t.content) for t in srv.transactions[:accepted_first]]
        assert subjects == [f"subject m{i}" for i in range(accepted_first)]
        assert all(isinstance(r, SendResult) for r in b.results)


def test_resent_messages_keep_their_order() -> None:
    # The pool sends in the caller's order; messages resent after a lost connection should
    # go out in that order too (as work lost by a worker that cannot connect does).
    rules = [Rule("MAIL", reply="421 4.7.0 too many messages", after=2, times=1)]
    with FaultyServer(Script(rules=rules)) as srv:
        assert backend(srv, pool_size=1).send_messages(messages(6)) == 6
        assert [subject_of(t.content) for t in srv.transactions] == [
            f"subject m{i}" for i in range(6)
        ]


def test_421_at_greeting_fails_without_sending() -> None:
    with FaultyServer(Script(greeting="421 4.3.2 service not available")) as srv:
        b = backend(srv)
        with pytest.raises(SMTPConnectError, match="421") as caught:
            b.send_messages(messages(3))
        assert isinstance(caught.value, ConnectionError)
        assert srv.transactions == []
        assert srv.commands == []  # nothing said after the refusal
        assert b.connection is None


def test_421_at_greeting_with_fail_silently_returns_zero() -> None:
    with FaultyServer(Script(greeting="421 4.3.2 service not available")) as srv:
        assert backend(srv, fail_silently=True).send_messages(messages(3)) == 0
        assert srv.transactions == []


def test_connection_lost_every_time_gives_up_after_retries() -> None:
    # Every MAIL is answered 421: one try and two retries (PoolOptions.retries), then report.
    with FaultyServer(Script(rules=[Rule("MAIL", reply="421 4.7.0 go away")])) as srv:
        b = backend(srv)
        with pytest.raises(ServerDisconnected, match="421"):
            b.send_messages(messages(1))
        assert srv.connections == 3
        assert srv.transactions == []
        [result] = b.results
        assert isinstance(result, ServerDisconnected)


def test_lost_connection_with_fail_silently_counts_what_was_accepted() -> None:
    # The 3rd and later MAILs get 421 forever: 2 accepted, the rest fail after the retries.
    rules = [Rule("MAIL", reply="421 4.7.0 go away", after=2)]
    with FaultyServer(Script(rules=rules)) as srv:
        b = backend(srv, fail_silently=True)
        assert b.send_messages(messages(5)) == 2
        assert delivered(srv) == once_each(2)
        assert [type(r) for r in b.results] == [SendResult] * 2 + [ServerDisconnected] * 3


# -- refusals: reported per message, never resent, the rest go through ----------------------


def test_refused_recipients_are_reported_and_the_others_delivered() -> None:
    rules = [
        Rule(r"RCPT TO:<gone@", reply="550 5.1.1 no such user"),
        Rule(r"RCPT TO:<later@", reply="451 4.3.0 try later"),
        Rule(r"RCPT TO:<full@", reply="452 4.2.2 mailbox full"),
    ]
    with FaultyServer(Script(rules=rules)) as srv:
        b = backend(srv)
        message = mailout.EmailMessage(
            "s",
            "b",
            "from@example.com",
            ["ok1@example.com", "gone@example.com", "later@example.com"],
            cc=["full@example.com", "ok2@example.com"],
        )
        assert b.send_messages([message, *messages(2)]) == 3  # the message still counts
        [first, *_] = b.results
        assert isinstance(first, SendResult)
        assert set(first.refused) == {"gone@example.com", "later@example.com", "full@example.com"}
        assert {a: r.code for a, r in first.refused.items()} == {
            "gone@example.com": 550,
            "later@example.com": 451,
            "full@example.com": 452,
        }
        assert first.refused["later@example.com"].is_transient
        assert set(first.accepted) == {"ok1@example.com", "ok2@example.com"}
        assert srv.transactions[0].recipients == ("ok1@example.com", "ok2@example.com")
        assert len(srv.transactions) == 3


def test_every_recipient_refused_fails_that_message_only() -> None:
    rules = [Rule(r"RCPT TO:<m1@", reply="550 5.1.1 no such user")]
    with FaultyServer(Script(rules=rules)) as srv:
        b = backend(srv, fail_silently=True)
        assert b.send_messages(messages(3)) == 2
        error = b.results[1]
        assert isinstance(error, RecipientsRefusedError)
        assert set(error.refused) == {"m1@example.com"}
        assert error.reply.code == 550
        assert not error.is_transient
        assert delivered(srv) == Counter({"m0@example.com": 1, "m2@example.com": 1})


@pytest.mark.parametrize("extensions", [DEFAULT_EXTENSIONS, NO_CHUNKING], ids=["BDAT", "DATA"])
def test_refused_sender_in_a_pipeline_fails_that_message_without_desync(
    extensions: tuple[str, ...],
) -> None:
    rules = [Rule(r"MAIL FROM:<spammer@", reply="550 5.7.1 sender refused")]
    with FaultyServer(Script(rules=rules, extensions=extensions)) as srv:
        msgs = messages(5)
        msgs[1].from_email = "spammer@example.com"
        b = backend(srv)
        with pytest.raises(SenderRefusedError) as caught:
            b.send_messages(msgs)
        assert caught.value.reply.code == 550
        assert [type(r) for r in b.results] == [SendResult, SenderRefusedError, *[SendResult] * 3]
        # No desync: each accepted message has its own recipient and its own content.
        assert [(t.recipients, subject_of(t.content)) for t in srv.transactions] == [
            ((f"m{i}@example.com",), f"subject m{i}") for i in (0, 2, 3, 4)
        ]
        assert srv.connections == 1  # a refusal does not cost the connection


def test_refused_content_is_reported_and_not_resent() -> None:
    rules = [Rule(r"BDAT \d+ LAST", reply="554 5.7.1 looks like spam", after=1, times=1)]
    with FaultyServer(Script(rules=rules)) as srv:
        b = backend(srv, fail_silently=True)
        assert b.send_messages(messages(3)) == 2
        assert isinstance(b.results[1], DataRefusedError)
        assert delivered(srv) == Counter({"m0@example.com": 1, "m2@example.com": 1})
        assert srv.connections == 1


def test_fail_silently_returns_the_count_and_raises_nothing() -> None:
    rules = [
        Rule(r"MAIL FROM:<spammer@", reply="550 5.7.1 sender refused"),
        Rule(r"RCPT TO:<m3@", reply="550 5.1.1 no such user"),
    ]
    with FaultyServer(Script(rules=rules)) as srv:
        msgs = messages(5)
        msgs[0].from_email = "spammer@example.com"
        assert backend(srv, fail_silently=True).send_messages(msgs) == 3
        assert len(srv.transactions) == 3


# -- slow and broken servers ---------------------------------------------------------------


def test_slow_reply_times_out_quickly() -> None:
    # Without PIPELINING, MAIL is a round trip of its own, bounded by `timeout`. (In a pipelined
    # write with the content, it would wait like the end of data: test_lost_final_reply.py.)
    extensions = tuple(e for e in DEFAULT_EXTENSIONS if e != "PIPELINING")
    with FaultyServer(Script(extensions=extensions, rules=[Rule("MAIL", delay=5.0)])) as srv:
        b = backend(srv, timeout=0.5)
        start = time.monotonic()
        with pytest.raises(SMTPTimeoutError) as caught:
            b.send_messages(messages(1))
        elapsed = time.monotonic() - start
        assert isinstance(caught.value, TimeoutError)
        # A timeout loses the connection: the message is tried 1 + retries (2) times.
        assert srv.connections == 3
        assert elapsed < 3.0
        assert srv.transactions == []


def test_silent_server_times_out_at_connect() -> None:
    with FaultyServer(Script(greeting=None)) as srv:
        start = time.monotonic()
        with pytest.raises(SMTPTimeoutError):
            backend(srv, timeout=0.5).send_messages(messages(1))
        assert time.monotonic() - start < 2.0


BROKEN_REPLIES = pytest.mark.parametrize(
    "raw",
    [
        b"garbage that is not a reply\r\n",
        b"250-" + b"x" * 100_000 + b"\r\n",
        b"250 " + b"y" * 100_000,  # and no line end at all
    ],
    ids=["garbage", "oversized-line", "oversized-unterminated"],
)


@BROKEN_REPLIES
def test_broken_reply_is_a_protocol_error(raw: bytes) -> None:
    # Lock-step: the broken reply answers MAIL, before any content was sent.
    extensions = tuple(e for e in DEFAULT_EXTENSIONS if e != "PIPELINING")
    with FaultyServer(Script(extensions=extensions, rules=[Rule("MAIL", raw=raw, times=1)])) as srv:
        b = backend(srv)
        with pytest.raises(SMTPProtocolError):
            b.send_messages(messages(1))
        assert isinstance(b.results[0], SMTPProtocolError)
        assert srv.transactions == []


@BROKEN_REPLIES
def test_broken_reply_after_the_content_was_sent_is_unknown(raw: bytes) -> None:
    # Pipelined BDAT: MAIL, RCPT, BDAT LAST and the content went out in one write, so whatever
    # the broken reply hides, the server had the whole message.
    with FaultyServer(Script(rules=[Rule("MAIL", raw=raw, times=1)])) as srv:
        b = backend(srv)
        with pytest.raises(DeliveryUnknownError) as caught:
            b.send_messages(messages(1))
        assert isinstance(caught.value.__cause__, SMTPProtocolError)
        assert b.results == [caught.value]
        assert srv.connections == 1  # never resent


def test_protocol_error_does_not_break_the_next_batch() -> None:
    # A garbled reply to the first message kills that connection. The pool must not hand the
    # dead client the next batch (50 per batch): those messages need a new connection, and the
    # caller must get results (and, with fail_silently, no exception).
    with FaultyServer(Script(rules=[Rule("MAIL", raw=b"garbage\r\n", times=1)])) as srv:
        b = backend(srv, pool_size=1, fail_silently=True)
        sent = b.send_messages(messages(60))
        assert len(b.results) == 60
        # After a garbled reply nothing more on that connection can be trusted: the whole first
        # batch (one burst, every message in it sent whole) has an unknown outcome, and none of
        # it is sent again (the server may well have taken some of it).
        assert all(isinstance(r, DeliveryUnknownError) for r in b.results[:50])
        assert all(isinstance(r.__cause__, SMTPProtocolError) for r in b.results[:50])
        assert all(isinstance(r, SendResult) for r in b.results[50:])
        assert sent == 10
        assert srv.connections == 2
        assert delivered(srv)["m59@example.com"] == 1
        assert max(delivered(srv).values()) == 1


def test_server_lying_about_pipelining_still_works() -> None:
    # It advertises PIPELINING but answers each command with its own delayed write.
    with FaultyServer(Script(lockstep=True, delay=0.002)) as srv:
        b = backend(srv)
        assert b.send_messages(messages(10)) == 10
        assert delivered(srv) == once_each(10)
        assert srv.errors == []


def test_lock_step_server_without_pipelining() -> None:
    extensions = tuple(e for e in DEFAULT_EXTENSIONS if e not in ("PIPELINING", "CHUNKING"))
    rules = [Rule(r"RCPT TO:<m2@", reply="550 5.1.1 no such user")]
    with FaultyServer(Script(extensions=extensions, rules=rules, lockstep=True)) as srv:
        b = backend(srv, fail_silently=True)
        assert b.send_messages(messages(4)) == 3
        assert [subject_of(t.content) for t in srv.transactions] == [
            "subject m0",
            "subject m1",
            "subject m3",
        ]
        assert all(t.method == "DATA" for t in srv.transactions)


# -- the errors themselves -------------------------------------------------------------------


def collect_errors() -> list[SMTPError]:
    rules = [
        Rule(r"MAIL FROM:<spammer@", reply="550 5.7.1 sender refused"),
        Rule(r"MAIL FROM:<busy@", reply="451 4.3.0 try again"),
        Rule(r"RCPT TO:<m2@", reply="450 4.2.1 mailbox busy"),
        Rule(r"BDAT \d+ LAST", reply="552 5.3.4 too big", after=3, times=1),
    ]
    with FaultyServer(Script(rules=rules)) as srv:
        msgs = messages(5)
        msgs[0].from_email = "spammer@example.com"
        msgs[1].from_email = "busy@example.com"
        b = backend(srv, fail_silently=True)
        b.send_messages(msgs)
        return [r for r in b.results if isinstance(r, SMTPError)]


def test_errors_carry_the_reply_and_whether_it_is_transient() -> None:
    errors = collect_errors()
    assert [(type(e), e.reply.code, e.is_transient) for e in errors] == [  # type: ignore[attr-defined]
        (SenderRefusedError, 550, False),
        (SenderRefusedError, 451, True),
        (RecipientsRefusedError, 450, True),
        (DataRefusedError, 552, False),
    ]
    for error in errors:
        assert isinstance(error, ReplyError)
        assert error.reply.text in str(error)
        assert error.code == error.reply.code


def test_errors_pickle_cleanly() -> None:
    errors: list[SMTPError] = [
        *collect_errors(),
        ServerDisconnected("server closed the connection: 421 4.3.2 bye"),
        SMTPTimeoutError("no reply in 0.5 s"),
        SMTPProtocolError("malformed reply line: b'garbage'"),
    ]
    for error in errors:
        copy: SMTPError = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error)
        assert str(copy) == str(error)
        assert copy.args == error.args
        if isinstance(error, ReplyError):
            assert isinstance(copy, ReplyError)
            assert copy.reply == error.reply
            assert copy.is_transient == error.is_transient
        if isinstance(error, RecipientsRefusedError):
            assert isinstance(copy, RecipientsRefusedError)
            assert copy.refused == error.refused
            assert copy.refused  # the per-address replies survive
