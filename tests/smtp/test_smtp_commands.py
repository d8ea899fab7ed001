"""Command encoding, CR/LF/NUL refusal, RFC 2920 pipelinable flags, and EHLO extensions."""

from __future__ import annotations

import pytest

from mailout.exceptions import BadHeaderError
from mailout.smtp._protocol import (
    Auth,
    AuthResponse,
    Bdat,
    Command,
    Data,
    Ehlo,
    Extensions,
    Helo,
    MailFrom,
    Noop,
    Quit,
    RcptTo,
    Reply,
    Rset,
    StartTLS,
)

ENCODED: list[tuple[Command, bytes]] = [
    (Ehlo("client.example"), b"EHLO client.example\r\n"),
    (Helo("[127.0.0.1]"), b"HELO [127.0.0.1]\r\n"),
    (MailFrom("a@example.com"), b"MAIL FROM:<a@example.com>\r\n"),
    (MailFrom("", ("SIZE=10",)), b"MAIL FROM:<> SIZE=10\r\n"),
    (
        MailFrom("\u00e9@example.com", ("SMTPUTF8",)),
        "MAIL FROM:<\u00e9@example.com> SMTPUTF8\r\n".encode(),
    ),
    (RcptTo("b@example.com"), b"RCPT TO:<b@example.com>\r\n"),
    (Data(), b"DATA\r\n"),
    (Bdat(10), b"BDAT 10\r\n"),
    (Bdat(0, last=True), b"BDAT 0 LAST\r\n"),
    (Rset(), b"RSET\r\n"),
    (Noop(), b"NOOP\r\n"),
    (Quit(), b"QUIT\r\n"),
    (StartTLS(), b"STARTTLS\r\n"),
    (Auth("LOGIN"), b"AUTH LOGIN\r\n"),
    (Auth("PLAIN", "AGEAYg=="), b"AUTH PLAIN AGEAYg==\r\n"),
    (Auth("PLAIN", ""), b"AUTH PLAIN =\r\n"),
    (AuthResponse("dXNlcg=="), b"dXNlcg==\r\n"),
]


@pytest.mark.parametrize(("command", "wire"), ENCODED)
def test_encode(command: Command, wire: bytes) -> None:
    assert command.encode() == wire


@pytest.mark.parametrize("bad", ["\r", "\n", "\0", "a\r\nRCPT TO:<x>", "x\0y"])
@pytest.mark.parametrize(
    "build",
    [
        lambda v: Ehlo(v),
        lambda v: Helo(v),
        lambda v: MailFrom(v),
        lambda v: RcptTo(v),
        lambda v: MailFrom("a@b", (v,)),
        lambda v: RcptTo("a@b", ("NOTIFY=NEVER", v)),
        lambda v: Auth(v),
    ],
)
def test_control_characters_refused(bad: str, build: object) -> None:
    with pytest.raises(BadHeaderError):
        build(bad).encode()  # type: ignore[operator]
    assert issubclass(BadHeaderError, ValueError)


def test_secret_never_in_error_or_repr() -> None:
    with pytest.raises(BadHeaderError) as info:
        AuthResponse("hunter2\r\nQUIT").encode()
    assert "hunter2" not in str(info.value)
    assert "hunter2" not in repr(AuthResponse("hunter2"))
    assert "hunter2" not in repr(Auth("PLAIN", "hunter2"))


def test_parameter_with_space_refused() -> None:
    with pytest.raises(BadHeaderError):
        MailFrom("a@b", ("A=1 B=2",)).encode()


def test_pipelinable_flags_follow_rfc_2920() -> None:
    # RFC 2920 §3.1: these may appear anywhere in a group; the rest only at its end.
    assert MailFrom("a").pipelinable
    assert RcptTo("a").pipelinable
    assert Rset().pipelinable
    assert Bdat(1).pipelinable  # RFC 3030 §4.2
    for command in (Ehlo("x"), Helo("x"), Data(), Noop(), Quit(), StartTLS(), Auth("PLAIN")):
        assert not command.pipelinable, command


EHLO = Reply(
    250,
    "mx.example greets you\nPIPELINING\nSIZE 35882577\n8BITMIME\nAUTH PLAIN LOGIN\n"
    "AUTH=CRAM-MD5\nENHANCEDSTATUSCODES\nCHUNKING\nSMTPUTF8\nSTARTTLS\ndsn",
)


def test_extensions_parse() -> None:
    ext = Extensions.parse(EHLO)
    assert ext.pipelining
    assert ext.chunking
    assert ext.eight_bit_mime
    assert ext.smtputf8
    assert ext.starttls
    assert ext.enhanced_status_codes
    assert ext.size == 35882577
    assert ext.auth_mechanisms == {"PLAIN", "LOGIN", "CRAM-MD5"}
    assert "DSN" in ext
    assert "dsn" in ext
    assert "MX.EXAMPLE" not in ext


@pytest.mark.parametrize(("line", "size"), [("SIZE", None), ("SIZE 0", None), ("SIZE x", None)])
def test_size_without_limit(line: str, size: int | None) -> None:
    assert Extensions.parse(Reply(250, f"host\n{line}")).size == size


def test_extensions_empty() -> None:
    ext = Extensions.parse(Reply(250, "host only"))
    assert not ext.pipelining
    assert ext.size is None
    assert ext.auth_mechanisms == frozenset()
