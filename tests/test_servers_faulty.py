"""The scripted fault-injecting server behaves as scripted, seen from smtplib and raw sockets."""

from __future__ import annotations

import smtplib
import time
from collections.abc import Iterator

import pytest

from tests.servers.faulty import FaultyServer, Rule, Script
from tests.servers.script import format_reply
from tests.servers.wire import RawClient

MESSAGE = b"Subject: hi\r\n\r\n.leading dot\r\nbody\r\n"


@pytest.fixture
def serve() -> Iterator[list[FaultyServer]]:
    """Servers started with `start(serve, script)`; each is checked for internal errors."""
    started: list[FaultyServer] = []
    yield started
    for srv in started:
        srv.stop()
        assert srv.errors == []


def start(started: list[FaultyServer], script: Script | None = None) -> FaultyServer:
    srv = FaultyServer(script).start()
    started.append(srv)
    return srv


def client(srv: FaultyServer, timeout: float = 5.0) -> smtplib.SMTP:
    return smtplib.SMTP(srv.host, srv.port, timeout=timeout)


# -- a correct server by default --------------------------------------------------------------


def test_smtplib_message_is_recorded(serve: list[FaultyServer]) -> None:
    srv = start(serve)
    with client(srv) as smtp:
        assert smtp.sendmail("a@example.com", ["b@example.com", "c@example.com"], MESSAGE) == {}
    [tx] = srv.transactions
    assert (tx.sender, tx.recipients, tx.method) == (
        "a@example.com",
        ("b@example.com", "c@example.com"),
        "DATA",
    )
    assert tx.content == MESSAGE  # smtplib stuffed the dot; the server unstuffed it
    assert srv.connections == 1
    assert srv.commands[-1] == "QUIT"
    assert [c.split()[0].upper() for c in srv.commands] == [
        "EHLO", "MAIL", "RCPT", "RCPT", "DATA", "QUIT"
    ]  # fmt: skip


def test_ehlo_advertises_defaults_and_custom_extensions(serve: list[FaultyServer]) -> None:
    with client(start(serve)) as smtp:
        smtp.ehlo()
        for keyword in ("pipelining", "chunking", "8bitmime", "smtputf8", "size", "starttls"):
            assert smtp.has_extn(keyword)
        assert smtp.esmtp_features["auth"].split() == ["PLAIN", "LOGIN"]
    with client(start(serve, Script(extensions=("8BITMIME",)))) as smtp:
        smtp.ehlo()
        assert smtp.has_extn("8bitmime")
        assert not smtp.has_extn("pipelining")


def test_starttls_then_auth_plain_masks_credentials(serve: list[FaultyServer]) -> None:
    srv = start(serve)
    with client(srv) as smtp:
        smtp.starttls(context=srv.client_context())
        smtp.login("user", "password")
        smtp.sendmail("a@example.com", ["b@example.com"], MESSAGE)
    [tx] = srv.transactions
    assert tx.tls
    assert tx.user == "user"
    assert "AUTH PLAIN ****" in srv.commands
    assert not any("password" in c or "cGFzc3dvcmQ" in c for c in srv.commands)


def test_auth_login_and_bad_password(serve: list[FaultyServer]) -> None:
    srv = start(serve, Script(extensions=("AUTH LOGIN",), users={"u": "p"}))
    with client(srv) as smtp:
        with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
            smtp.login("u", "wrong")
        assert refused.value.smtp_code == 535
        smtp.login("u", "p")
    # smtplib sends the username as an initial response, then answers the password challenge
    assert srv.commands.count("AUTH LOGIN ****") == srv.commands.count("****") == 2
    assert "AUTH LOGIN ****" in srv.commands


def test_size_limit_is_enforced(serve: list[FaultyServer]) -> None:
    srv = start(serve, Script(extensions=("SIZE 10",)))
    with client(srv) as smtp, pytest.raises(smtplib.SMTPSenderRefused) as refused:
        smtp.sendmail("a@example.com", ["b@example.com"], MESSAGE)
    assert refused.value.smtp_code == 552


# -- scripted replies -------------------------------------------------------------------------


def test_scripted_550_for_one_recipient(serve: list[FaultyServer]) -> None:
    srv = start(serve, Script(rules=[Rule(r"RCPT TO:<bad@", reply="550 5.1.1 no such user")]))
    with client(srv) as smtp:
        refused = smtp.sendmail("a@example.com", ["ok@example.com", "bad@example.com"], MESSAGE)
    assert refused == {"bad@example.com": (550, b"5.1.1 no such user")}
    assert srv.transactions[0].recipients == ("ok@example.com",)


def test_scripted_451_on_mail_from(serve: list[FaultyServer]) -> None:
    srv = start(serve, Script(rules=[Rule("MAIL FROM", reply="451 4.3.0 try later")]))
    with client(srv) as smtp, pytest.raises(smtplib.SMTPSenderRefused) as refused:
        smtp.sendmail("a@example.com", ["b@example.com"], MESSAGE)
    assert refused.value.smtp_code == 451
    assert srv.transactions == []


def test_421_at_greeting(serve: list[FaultyServer]) -> None:
    srv = start(serve, Script(greeting="421 4.3.2 too busy"))
    with pytest.raises(smtplib.SMTPConnectError) as refused:
        client(srv)
    assert refused.value.smtp_code == 421


def test_421_after_two_messages_closes(serve: list[FaultyServer]) -> None:
    rule = Rule("MAIL", reply="421 4.7.0 too many messages", after=2)
    srv = start(serve, Script(rules=[rule]))
    with client(srv) as smtp:
        for _ in range(2):
            smtp.sendmail("a@example.com", ["b@example.com"], MESSAGE)
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            smtp.sendmail("a@example.com", ["b@example.com"], MESSAGE)
        assert refused.value.smtp_code == 421
    assert len(srv.transactions) == 2


def test_421_on_any_command(serve: list[FaultyServer]) -> None:
    srv = start(serve, Script(rules=[Rule(".*", reply="421 4.3.2 shutting down")]))
    with RawClient(srv.host, srv.port) as raw:
        assert raw.reply()[0] == 220
        raw.send(b"NOOP\r\n")
        assert raw.reply() == (421, ["4.3.2 shutting down"])
        assert raw.closed_by_peer()


def test_rule_after_and_times_count_across_connections(serve: list[FaultyServer]) -> None:
    srv = start(serve, Script(rules=[Rule("NOOP", reply="250 scripted", after=1, times=2)]))
    texts = []
    for _ in range(2):
        with client(srv) as smtp:
            texts += [smtp.noop()[1], smtp.noop()[1]]
    assert texts == [b"2.0.0 OK", b"scripted", b"scripted", b"2.0.0 OK"]
    assert srv.connections == 2


def test_end_of_data_refused(serve: list[FaultyServer]) -> None:
    srv = start(serve, Script(rules=[Rule(r"\.$", reply="554 5.7.1 spam")]))
    with client(srv) as smtp, pytest.raises(smtplib.SMTPDataError) as refused:
        smtp.sendmail("a@example.com", ["b@example.com"], MESSAGE)
    assert refused.value.smtp_code == 554
    assert srv.transactions == []


def test_extra_bytes_follow_the_reply(serve: list[FaultyServer]) -> None:
    srv = start(serve, Script(rules=[Rule("NOOP", extra=b"250 2.0.0 unsolicited\r\n")]))
    with RawClient(srv.host, srv.port) as raw:
        assert raw.reply()[0] == 220
        raw.send(b"NOOP\r\n")
        assert raw.reply() == (250, ["2.0.0 OK"])
        assert raw.reply() == (250, ["2.0.0 unsolicited"])


def test_extra_after_354_comes_before_the_content_is_read(serve: list[FaultyServer]) -> None:
    srv = start(serve, Script(rules=[Rule("DATA", extra=b"250 2.0.0 early\r\n")]))
    with RawClient(srv.host, srv.port) as raw:
        raw.send(b"EHLO c\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n")
        assert raw.codes(5) == [220, 250, 250, 250, 354]
        assert raw.reply() == (250, ["2.0.0 early"])  # no content sent yet
        raw.send(b"body\r\n.\r\n")
        assert raw.reply()[0] == 250  # the real reply to the content
    assert [t.content for t in srv.transactions] == [b"body\r\n"]


@pytest.mark.parametrize("end", [r"\.$", r"BDAT \d+ LAST"])
def test_lose_stores_the_message_and_never_replies(serve: list[FaultyServer], end: str) -> None:
    srv = start(serve, Script(rules=[Rule(end, action="lose")]))
    with RawClient(srv.host, srv.port) as raw:
        raw.send(b"EHLO c\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n")
        assert raw.codes(4) == [220, 250, 250, 250]
        if end.startswith("BDAT"):
            raw.send(b"BDAT 6 LAST\r\nbody\r\n")
        else:
            raw.send(b"DATA\r\n")
            assert raw.reply()[0] == 354
            raw.send(b"body\r\n.\r\n")
        assert raw.closed_by_peer()
        assert raw.buf == b""  # not a byte of the final reply
    assert [t.content for t in srv.transactions] == [b"body\r\n"]


def test_data_without_recipients(serve: list[FaultyServer]) -> None:
    rule = Rule(r"RCPT TO:<bad@", reply="550 5.1.1 no")
    srv = start(serve, Script(rules=[rule], data_without_recipients=True))
    with RawClient(srv.host, srv.port) as raw:
        raw.send(b"EHLO c\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<bad@example.com>\r\nDATA\r\n")
        assert raw.codes(5) == [220, 250, 250, 550, 354]
        raw.send(b"x\r\n.\r\n")
        assert raw.reply()[0] == 554
    assert srv.transactions == []


# -- broken connections and timing ------------------------------------------------------------


def test_drop_mid_data(serve: list[FaultyServer]) -> None:
    srv = start(serve, Script(rules=[Rule("DATA", drop_after=100)]))
    with client(srv) as smtp, pytest.raises(smtplib.SMTPServerDisconnected):
        smtp.sendmail("a@example.com", ["b@example.com"], b"x" * 80 + b"\r\n" * 5000)
    assert srv.transactions == []


def test_drop_mid_bdat(serve: list[FaultyServer]) -> None:
    srv = start(serve, Script(rules=[Rule("BDAT", drop_after=10)]))
    with RawClient(srv.host, srv.port) as raw:
        raw.send(b"EHLO c\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n")
        assert raw.codes(3) == [220, 250, 250]
        raw.send(b"BDAT 100 LAST\r\n" + b"y" * 50)
        assert raw.closed_by_peer()
    assert srv.transactions == []


def test_drop_without_reply(serve: list[FaultyServer]) -> None:
    srv = start(serve, Script(rules=[Rule("RCPT", action="drop")]))
    with client(srv) as smtp, pytest.raises(smtplib.SMTPServerDisconnected):
        smtp.sendmail("a@example.com", ["b@example.com"], MESSAGE)


def test_delay_every_reply_times_out_client(serve: list[FaultyServer]) -> None:
    srv = start(serve, Script(delay=0.5))
    with pytest.raises(smtplib.SMTPServerDisconnected, match="timed out"):
        client(srv, timeout=0.1)


def test_hang_on_data(serve: list[FaultyServer]) -> None:
    srv = start(serve, Script(rules=[Rule("DATA", action="hang")]))
    with client(srv, timeout=0.2) as smtp, pytest.raises(smtplib.SMTPServerDisconnected):
        smtp.sendmail("a@example.com", ["b@example.com"], MESSAGE)


def test_hang_at_greeting(serve: list[FaultyServer]) -> None:
    srv = start(serve, Script(greeting=None))
    with pytest.raises(smtplib.SMTPServerDisconnected, match="timed out"):
        client(srv, timeout=0.1)


def test_garbage_and_oversized_reply(serve: list[FaultyServer]) -> None:
    rules = [Rule("NOOP", raw=b"\x00\xffgarbage\r\n"), Rule("VRFY", raw=b"250 " + b"x" * 9000)]
    srv = start(serve, Script(rules=rules))
    with client(srv) as smtp:
        assert smtp.noop()[0] == -1  # smtplib's code for an unparsable reply
        with pytest.raises(smtplib.SMTPResponseException, match="too long"):
            smtp.verify("x")


# -- pipelining and chunking on the wire ------------------------------------------------------


def test_pipelined_commands_are_answered_in_order(serve: list[FaultyServer]) -> None:
    srv = start(serve, Script(rules=[Rule(r"RCPT TO:<bad@", reply="550 5.1.1 no")]))
    with RawClient(srv.host, srv.port) as raw:
        raw.send(
            b"EHLO c\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n"
            b"RCPT TO:<bad@example.com>\r\nRCPT TO:<c@example.com>\r\nDATA\r\n"
        )
        assert raw.codes(7) == [220, 250, 250, 250, 550, 250, 354]
        raw.send(b"..dot\r\nline\r\n.\r\nMAIL FROM:<x@example.com>\r\nRSET\r\nQUIT\r\n")
        assert raw.codes(4) == [250, 250, 250, 221]
    [tx] = srv.transactions
    assert tx.recipients == ("b@example.com", "c@example.com")
    assert tx.content == b".dot\r\nline\r\n"


def test_bare_lf_is_not_a_line_end(serve: list[FaultyServer]) -> None:
    srv = start(serve)
    with RawClient(srv.host, srv.port) as raw:
        raw.send(b"EHLO c\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n")
        assert raw.codes(5) == [220, 250, 250, 250, 354]
        raw.send(b"one\n.\nMAIL FROM:<smuggled@example.com>\r\n.\r\n")
        assert raw.codes(1) == [250]
    assert srv.transactions[0].content == b"one\n.\nMAIL FROM:<smuggled@example.com>\r\n"


def test_bdat_chunks(serve: list[FaultyServer]) -> None:
    srv = start(serve)
    with RawClient(srv.host, srv.port) as raw:
        raw.send(
            b"EHLO c\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n"
            b"BDAT 7\r\nhello\r\nBDAT 0\r\nBDAT 8 LAST\r\n.world\r\n"
        )
        assert raw.codes(7) == [220, 250, 250, 250, 250, 250, 250]
    [tx] = srv.transactions
    assert (tx.method, tx.content) == ("BDAT", b"hello\r\n.world\r\n")


def test_bdat_refused_chunk_is_still_consumed(serve: list[FaultyServer]) -> None:
    srv = start(serve, Script(rules=[Rule("BDAT .* LAST", reply="554 5.6.0 bad content")]))
    with RawClient(srv.host, srv.port) as raw:
        raw.send(
            b"EHLO c\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n"
            b"BDAT 6 LAST\r\nNOOP\r\nNOOP\r\n"
        )
        assert raw.codes(6) == [220, 250, 250, 250, 554, 250]
    assert srv.transactions == []


def test_lockstep_answers_one_round_trip_per_command(serve: list[FaultyServer]) -> None:
    elapsed = {}
    for lockstep in (False, True):
        srv = start(serve, Script(delay=0.1, lockstep=lockstep))
        with RawClient(srv.host, srv.port) as raw:
            assert raw.reply()[0] == 220
            began = time.monotonic()
            raw.send(b"NOOP\r\n" * 4)
            assert raw.codes(4) == [250] * 4
            elapsed[lockstep] = time.monotonic() - began
    # Lower bounds only (a loaded machine is slow, never fast), and one compared with the
    # other: four pipelined commands cost one delay, four lock-step ones cost four.
    assert elapsed[False] >= 0.1
    assert elapsed[True] >= 0.4
    assert elapsed[False] < elapsed[True]


# -- STARTTLS attacks -------------------------------------------------------------------------


def test_starttls_stripping(serve: list[FaultyServer]) -> None:
    extensions = ("PIPELINING", "8BITMIME", "AUTH PLAIN LOGIN")
    srv = start(serve, Script(extensions=extensions))
    with client(srv) as smtp:
        with pytest.raises(smtplib.SMTPNotSupportedError):
            smtp.starttls(context=srv.client_context())
        assert smtp.docmd("STARTTLS")[0] == 502


def test_starttls_injection_is_sent_and_smtplib_discards_it(serve: list[FaultyServer]) -> None:
    injected = b"250-evil.test\r\n250 AUTH PLAIN\r\n"
    srv = start(serve, Script(starttls_inject=injected))
    with RawClient(srv.host, srv.port) as raw:
        raw.send(b"EHLO c\r\nSTARTTLS\r\n")
        assert raw.codes(2) == [220, 250]
        assert raw.reply()[0] == 220
        while not raw.received.endswith(injected):
            raw.recv()
    with client(srv) as smtp:
        smtp.starttls(context=srv.client_context())
        smtp.ehlo()
        assert not smtp.has_extn("evil.test")
        assert smtp.has_extn("pipelining")


def test_server_discards_commands_pipelined_after_starttls(serve: list[FaultyServer]) -> None:
    srv = start(serve)
    with RawClient(srv.host, srv.port) as raw:
        raw.send(b"EHLO c\r\n")
        assert raw.codes(2) == [220, 250]
        raw.send(b"STARTTLS\r\nMAIL FROM:<injected@example.com>\r\n")
        assert raw.reply()[0] == 220
        raw.starttls(srv.client_context())
        raw.send(b"RCPT TO:<b@example.com>\r\n")
        assert raw.reply()[0] == 503  # the plaintext MAIL FROM was not carried over
    assert not any("injected" in c for c in srv.commands)


# -- script values ----------------------------------------------------------------------------


def test_format_reply() -> None:
    assert format_reply("250 ok") == b"250 ok\r\n"
    assert format_reply("250 a\nb\n250 c") == b"250-a\r\n250-b\r\n250 c\r\n"


@pytest.mark.parametrize(
    "kwargs", [{"match": "("}, {"match": "x", "action": "explode"}, {"match": "x", "raw": b""}]
)
def test_bad_rules_fail_at_construction(kwargs: dict[str, object]) -> None:
    if "raw" in kwargs:
        kwargs["reply"] = "250 x"
    with pytest.raises(ValueError, match="Rule"):
        Rule(**kwargs)  # type: ignore[arg-type]
