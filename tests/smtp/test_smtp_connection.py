"""The sans-I/O state machine: pairing replies with commands, the state table, STARTTLS, AUTH."""

from __future__ import annotations

import base64

import pytest

from mailout.exceptions import AuthenticationError, SMTPProtocolError
from mailout.smtp._protocol import (
    NEED_DATA,
    Auth,
    AuthResponse,
    Command,
    Connection,
    Data,
    DataContent,
    Ehlo,
    LocalProtocolError,
    MailFrom,
    Noop,
    Quit,
    RcptTo,
    Reply,
    Rset,
    StartTLS,
    State,
    auth_login,
    auth_plain,
    auth_xoauth2,
)
from mailout.smtp._protocol.auth import AuthFlow

EHLO_PIPE = b"250-mx\r\n250-PIPELINING\r\n250-CHUNKING\r\n250 ENHANCEDSTATUSCODES\r\n"


def replies(conn: Connection, data: bytes = b"") -> list[Reply]:
    conn.receive_data(data)
    out = []
    while (reply := conn.next_reply()) is not NEED_DATA:
        assert isinstance(reply, Reply)
        out.append(reply)
    return out


def ready(ehlo: bytes = EHLO_PIPE) -> Connection:
    conn = Connection()
    assert replies(conn, b"220 hi\r\n")[0].command == "GREETING"
    conn.send(Ehlo("me"))
    assert replies(conn, ehlo)[0].is_positive
    assert conn.state is State.READY
    return conn


def test_greeting_first() -> None:
    conn = Connection()
    assert conn.next_reply() is NEED_DATA
    with pytest.raises(LocalProtocolError):
        conn.send(Ehlo("me"))  # RFC 5321 §3.1: wait for the greeting
    replies(conn, b"220 hi\r\n")
    assert conn.state is State.CONNECTED


def test_pipelined_replies_pair_with_their_commands() -> None:
    conn = ready()
    wire = b"".join(conn.send(c) for c in (MailFrom("a@x"), RcptTo("b@x"), RcptTo("c@x"), Data()))
    assert wire.count(b"\r\n") == 4
    got = replies(conn, b"250 2.1.0 ok\r\n550 5.1.1 no\r\n250 ok\r\n354 go\r\n")
    assert [(r.command, r.code) for r in got] == [
        ("MAIL", 250),
        ("RCPT", 550),
        ("RCPT", 250),
        ("DATA", 354),
    ]
    assert got[1].enhanced == "5.1.1"
    assert conn.state is State.CONTENT
    assert conn.send(DataContent(b".x")) == b"..x\r\n.\r\n"
    assert replies(conn, b"250 queued\r\n")[0].command == "CONTENT"
    assert conn.state is State.READY


def test_replies_byte_by_byte() -> None:
    conn = ready()
    conn.send(MailFrom("a@x"))
    conn.send(RcptTo("b@x"))
    got: list[Reply] = []
    for byte in b"250 a\r\n250 b\r\n":
        got += replies(conn, bytes([byte]))
    assert [r.text for r in got] == ["a", "b"]


def test_no_pipelining_without_the_extension() -> None:
    conn = ready(b"250 mx\r\n")
    conn.send(MailFrom("a@x"))
    with pytest.raises(LocalProtocolError, match="previous reply"):
        conn.send(RcptTo("b@x"))


def test_nothing_after_a_group_ender() -> None:
    conn = ready()
    conn.send(MailFrom("a@x"))
    conn.send(RcptTo("b@x"))
    conn.send(Data())
    with pytest.raises(LocalProtocolError):
        conn.send(Rset())
    with pytest.raises(LocalProtocolError):
        conn.send(DataContent(b"x"))  # content waits for 354 (RFC 5321 §4.1.1.4)


@pytest.mark.parametrize(
    ("state_setup", "command"),
    [
        ([], RcptTo("b@x")),
        ([], Data()),
        ([], DataContent(b"")),
        ([MailFrom("a@x")], MailFrom("a@x")),
        ([MailFrom("a@x")], Data()),
    ],
)
def test_state_table_refuses(state_setup: list[Command], command: Command) -> None:
    conn = ready()
    for c in state_setup:
        conn.send(c)
    with pytest.raises(LocalProtocolError):
        conn.send(command)


def test_bdat_transaction_pipelined() -> None:
    conn = ready()
    wire = conn.send(MailFrom("a@x")) + conn.send(RcptTo("b@x")) + conn.send_bdat(b"hi", last=True)
    assert wire.endswith(b"BDAT 2 LAST\r\nhi")
    assert conn.state is State.READY  # optimistic: the next MAIL may follow in the same write
    conn.send(Rset())
    conn.send(MailFrom("c@x"))
    got = replies(conn, b"250 a\r\n250 b\r\n250 c\r\n250 d\r\n250 e\r\n")
    assert [r.command for r in got] == ["MAIL", "RCPT", "BDAT", "RSET", "MAIL"]


def test_send_bdat_only_through_helper() -> None:
    from mailout.smtp._protocol import Bdat

    conn = ready()
    conn.send(MailFrom("a@x"))
    conn.send(RcptTo("a@x"))
    with pytest.raises(LocalProtocolError):
        conn.send(Bdat(3))


def test_refused_mail_in_lockstep_returns_to_ready() -> None:
    conn = ready(b"250 mx\r\n")
    conn.send(MailFrom("a@x"))
    replies(conn, b"550 no\r\n")
    assert conn.state is State.READY
    conn.send(MailFrom("b@x"))


def test_421_closes_at_any_time() -> None:
    conn = ready()
    conn.send(MailFrom("a@x"))
    conn.send(RcptTo("b@x"))
    got = replies(conn, b"421 bye\r\n")
    assert got[0].code == 421
    assert got[0].command == "MAIL"
    assert conn.state is State.CLOSED
    assert conn.pending == ()
    with pytest.raises(LocalProtocolError):
        conn.send(Noop())


def test_unsolicited_421_and_garbage() -> None:
    conn = ready()
    assert replies(conn, b"421 idle timeout\r\n")[0].code == 421
    conn = ready()
    with pytest.raises(SMTPProtocolError):
        replies(conn, b"250 who asked\r\n")


# -- replies out of step: early, extra, or of a class the command cannot get -----------------


def test_a_reply_before_its_command_is_refused_at_the_next_send() -> None:
    # The hostile "250 right after 354": the content has not been sent, yet a reply is here.
    conn = ready()
    for command in (MailFrom("a@x"), RcptTo("b@x"), Data()):
        conn.send(command)
    conn.receive_data(b"250 ok\r\n250 ok\r\n354 go\r\n250 2.0.0 early\r\n")
    got = [conn.next_reply() for _ in range(3)]
    assert [r.code for r in got if isinstance(r, Reply)] == [250, 250, 354]
    with pytest.raises(SMTPProtocolError, match="before the command"):
        conn.send(DataContent(b"x"))
    assert conn.state is State.CLOSED  # nothing more may be sent on it


def test_a_partial_early_reply_counts_too() -> None:
    conn = ready()
    conn.receive_data(b"25")
    with pytest.raises(SMTPProtocolError):
        conn.check_idle()


def test_an_early_421_means_the_server_is_closing() -> None:
    from mailout.exceptions import ServerDisconnected

    conn = ready()
    conn.receive_data(b"421 4.3.2 going down\r\n")
    with pytest.raises(ServerDisconnected, match="421"):
        conn.send(MailFrom("a@x"))
    assert conn.state is State.CLOSED


def test_quit_is_sent_whatever_came_before() -> None:
    conn = ready()
    conn.receive_data(b"250 stray\r\n")
    assert conn.send(Quit()) == b"QUIT\r\n"


@pytest.mark.parametrize(
    ("commands", "wire"),
    [
        ([MailFrom("a@x"), RcptTo("b@x"), Data()], b"250 a\r\n250 b\r\n250 shifted\r\n"),
        ([MailFrom("a@x"), RcptTo("b@x"), Data()], b"250 a\r\n250 b\r\n352 what\r\n"),
        ([MailFrom("a@x")], b"354 go ahead\r\n"),
        ([Rset()], b"550 stale refusal\r\n"),
        ([MailFrom("a@x"), RcptTo("b@x")], b"250 a\r\n334 VXNlcg==\r\n"),
    ],
    ids=["250-to-DATA", "352-to-DATA", "354-to-MAIL", "550-to-RSET", "334-to-RCPT"],
)
def test_a_reply_the_command_cannot_get_is_a_protocol_error(
    commands: list[Command], wire: bytes
) -> None:
    conn = ready()
    for command in commands:
        conn.send(command)
    with pytest.raises(SMTPProtocolError, match=r"RFC 5321 §4\.3\.2"):
        replies(conn, wire)
    assert conn.state is State.CLOSED
    assert conn.pending == ()


def test_content_cannot_get_354() -> None:
    conn = ready()
    for command in (MailFrom("a@x"), RcptTo("b@x"), Data()):
        conn.send(command)
    replies(conn, b"250 a\r\n250 b\r\n354 go\r\n")
    conn.send(DataContent(b"x"))
    with pytest.raises(SMTPProtocolError):
        replies(conn, b"354 again\r\n")


def test_committing_while_an_end_of_data_awaits_its_reply() -> None:
    conn = ready()
    assert not conn.committing
    conn.send(MailFrom("a@x"))
    conn.send(RcptTo("b@x"))
    conn.send_bdat(b"part", last=False)
    assert not conn.committing  # a chunk that is not the last decides nothing
    conn.send_bdat(b"end", last=True)
    conn.send(Rset())
    conn.send(MailFrom("c@x"))
    conn.send(RcptTo("d@x"))
    conn.send_bdat(b"two", last=True)
    states = []
    for _ in range(7):  # MAIL, RCPT, the chunk, the first LAST, RSET, MAIL, RCPT
        replies(conn, b"250 ok\r\n")
        states.append(conn.committing)
    assert states == [True] * 7  # the second LAST still awaits its reply
    replies(conn, b"250 queued\r\n")
    assert not conn.committing
    assert conn.idle


def test_the_lone_dot_that_aborts_data_commits_nothing() -> None:
    conn = ready()
    for command in (MailFrom("a@x"), RcptTo("b@x"), Data()):
        conn.send(command)
    replies(conn, b"250 a\r\n550 b\r\n354 go\r\n")
    assert conn.send(DataContent(b"", abort=True)) == b".\r\n"
    assert not conn.committing
    conn = ready()
    for command in (MailFrom("a@x"), RcptTo("b@x"), Data()):
        conn.send(command)
    replies(conn, b"250 a\r\n250 b\r\n354 go\r\n")
    conn.send(DataContent(b"x"))
    assert conn.committing


def test_buffered_replies_are_paired_up_to_the_first_incomplete_one() -> None:
    conn = ready()
    for command in (MailFrom("a@x"), RcptTo("b@x")):
        conn.send(command)
    conn.send_bdat(b"x", last=True)
    conn.send(Rset())
    conn.receive_data(b"250 a\r\n250 b\r\n250 c\r\n25")
    got = conn.buffered_replies()
    assert [r.command for r in got] == ["MAIL", "RCPT", "BDAT"]
    conn.receive_data(b"0 d\r\n421 bye\r\n")
    assert [r.code for r in conn.buffered_replies()] == [250]
    conn = ready()
    conn.send(MailFrom("a@x"))
    conn.send(RcptTo("b@x"))
    conn.receive_data(b"250 a\r\n354 wrong\r\n")
    assert [r.code for r in conn.buffered_replies()] == [250]  # stops at the out-of-step one


def test_starttls_discards_buffer_and_extensions() -> None:
    conn = ready(b"250-mx\r\n250-STARTTLS\r\n250 PIPELINING\r\n")
    conn.send(StartTLS())
    # RFC 3207 §4.2: a man in the middle appends a reply after 220; it must be forgotten.
    got = replies(conn, b"220 go\r\n250-injected\r\n")
    assert got[0].code == 220
    assert conn.state is State.STARTTLS
    with pytest.raises(LocalProtocolError):
        conn.send(Ehlo("me"))
    conn.start_tls()
    assert conn.state is State.CONNECTED
    assert not conn.extensions.pipelining
    conn.send(Ehlo("me"))
    assert replies(conn, b"250 mx\r\n")[0].text == "mx"


def test_ehlo_refused_then_helo() -> None:
    conn = Connection()
    replies(conn, b"220 hi\r\n")
    conn.send(Ehlo("me"))
    replies(conn, b"502 what\r\n")
    assert conn.state is State.CONNECTED
    from mailout.smtp._protocol import Helo

    conn.send(Helo("me"))
    replies(conn, b"250 ok\r\n")
    assert conn.state is State.READY


def test_quit_closes() -> None:
    conn = ready()
    conn.send(Quit())
    replies(conn, b"221 bye\r\n")
    assert conn.state is State.CLOSED


def run_flow(flow: AuthFlow, server: list[bytes]) -> list[Command]:
    """Drive an auth generator against scripted replies; return the commands it sent."""
    sent: list[Command] = [next(flow)]
    for line in server:
        try:
            sent.append(flow.send(Reply(int(line[:3]), line[4:].decode())))
        except StopIteration:
            break
    return sent


def test_auth_plain() -> None:
    sent = run_flow(auth_plain("user", "pass"), [b"235 ok"])
    assert isinstance(sent[0], Auth)
    assert sent[0].initial_response == base64.b64encode(b"\0user\0pass").decode()


def test_auth_plain_refused_hides_password() -> None:
    with pytest.raises(AuthenticationError) as info:
        run_flow(auth_plain("user", "s3cret"), [b"535 5.7.8 bad credentials"])
    assert "s3cret" not in str(info.value)
    assert "s3cret" not in repr(info.value.args)
    assert info.value.reply.code == 535


def test_auth_login() -> None:
    sent = run_flow(
        auth_login("user", "pass"), [b"334 VXNlcm5hbWU6", b"334 UGFzc3dvcmQ6", b"235 ok"]
    )
    assert [type(c) for c in sent] == [Auth, AuthResponse, AuthResponse]
    assert isinstance(sent[2], AuthResponse)
    assert base64.b64decode(sent[2].data) == b"pass"


def test_auth_xoauth2_error_challenge() -> None:
    with pytest.raises(AuthenticationError):
        run_flow(auth_xoauth2("u", "tok"), [b"334 eyJzdGF0dXMiOiI0MDEifQ==", b"535 no"])


def test_auth_state_in_core() -> None:
    conn = ready(b"250-mx\r\n250 AUTH LOGIN\r\n")
    conn.send(Auth("LOGIN"))
    replies(conn, b"334 VXNlcm5hbWU6\r\n")
    assert conn.state is State.AUTH
    with pytest.raises(LocalProtocolError):
        conn.send(MailFrom("a@x"))
    conn.send(AuthResponse("dQ=="))
    replies(conn, b"334 UGFzc3dvcmQ6\r\n")
    conn.send(AuthResponse("cA=="))
    replies(conn, b"235 ok\r\n")
    assert conn.state is State.READY
