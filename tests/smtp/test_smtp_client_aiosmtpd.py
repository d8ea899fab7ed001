"""Both drivers against a real aiosmtpd server on 127.0.0.1 (no PIPELINING: lock-step path)."""

from __future__ import annotations

import asyncio
import gc
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword, Session
from aiosmtpd.smtp import Envelope as ServerEnvelope

from mailout.exceptions import (
    AuthenticationError,
    DataRefusedError,
    RecipientsRefusedError,
    SenderRefusedError,
    SMTPConnectError,
    SMTPError,
    SMTPSecurityError,
    SMTPTimeoutError,
    SMTPUTF8NotSupportedError,
    StartTLSNotOfferedError,
)
from mailout.smtp import Envelope
from tests.smtp.smtp_helpers import MakeClient, free_port

MESSAGE = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: hi\r\n\r\nline 1\n.line 2\n"


class Handler:
    def __init__(self) -> None:
        self.messages: list[ServerEnvelope] = []
        self.reject_rcpt = {"nobody@example.com"}
        self.reject_mail = {"spammer@example.com"}

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: ServerEnvelope,
        address: str,
        options: list[str],
    ) -> str:
        if address in self.reject_mail:
            return "550 sender refused"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: ServerEnvelope,
        address: str,
        options: list[str],
    ) -> str:
        if address in self.reject_rcpt:
            return "550 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: ServerEnvelope) -> str:
        if b"REJECT-ME" in (envelope.original_content or b""):
            return "554 content refused"
        self.messages.append(envelope)
        return "250 Message accepted"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture
def client_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def _authenticator(
    server: SMTP, session: Session, envelope: ServerEnvelope, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == b"user"
        and (auth_data.password == b"s3cret pass")
    )
    # handled=False makes aiosmtpd send its own 535 reply on failure.
    return AuthResult(success=ok, handled=False)


class Server:
    def __init__(self, **kwargs: Any) -> None:
        self.handler = Handler()
        self.port = free_port()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port, **kwargs)


@pytest.fixture
def aiosmtpd_server(request: pytest.FixtureRequest) -> Iterator[Server]:
    kwargs = getattr(request, "param", {})
    server = Server(**kwargs)
    server.controller.start()
    yield server
    server.controller.stop()


@pytest.fixture
def tls_server(server_tls: ssl.SSLContext) -> Iterator[Server]:
    server = Server(tls_context=server_tls, require_starttls=True)
    server.controller.start()
    yield server
    server.controller.stop()


def test_send_lockstep(make_client: MakeClient, aiosmtpd_server: Server) -> None:
    async def scenario() -> None:
        async with make_client("127.0.0.1", aiosmtpd_server.port) as client:
            assert client.is_connected
            assert not client.extensions.pipelining
            result = await client.send(
                Envelope("a@example.com", ("b@example.com", "nobody@example.com")), MESSAGE
            )
            assert set(result.accepted) == {"b@example.com"}
            assert result.refused["nobody@example.com"].code == 550
            assert result.reply.code == 250
            assert result.reply.command == "CONTENT"
            # The connection is reusable after a refusal.
            with pytest.raises(SenderRefusedError) as info:
                await client.send(Envelope("spammer@example.com", ("b@example.com",)), MESSAGE)
            assert info.value.reply.command == "MAIL"
            assert not info.value.is_transient
            with pytest.raises(RecipientsRefusedError) as refused:
                await client.send(Envelope("a@example.com", ("nobody@example.com",)), MESSAGE)
            assert list(refused.value.refused) == ["nobody@example.com"]
            with pytest.raises(DataRefusedError):
                await client.send(Envelope("a@example.com", ("b@example.com",)), b"REJECT-ME\r\n")
            results = await client.send_many(
                [
                    (Envelope("a@example.com", ("b@example.com",)), b"one\r\n"),
                    (Envelope("spammer@example.com", ("b@example.com",)), b"two\r\n"),
                    (Envelope("a@example.com", ("c@example.com",)), b"three\r\n"),
                ]
            )
            assert [type(r).__name__ for r in results] == [
                "SendResult",
                "SenderRefusedError",
                "SendResult",
            ]
        assert not client.is_connected

    asyncio.run(scenario())
    messages = aiosmtpd_server.handler.messages
    assert messages[0].content == (
        b"From: a@example.com\r\nTo: b@example.com\r\nSubject: hi\r\n\r\nline 1\r\n.line 2\r\n"
    )
    assert [m.content for m in messages[1:]] == [b"one\r\n", b"three\r\n"]


def test_smtputf8_and_8bitmime(make_client: MakeClient, aiosmtpd_server: Server) -> None:
    async def scenario() -> None:
        async with make_client("127.0.0.1", aiosmtpd_server.port) as client:
            envelope = Envelope(
                "j\u00f6rg@example.com", ("b@example.com",), smtputf8=True, eight_bit=True
            )
            await client.send(envelope, "Subject: \u00e9\r\n\r\n\u00e9\r\n".encode())

    asyncio.run(scenario())
    (message,) = aiosmtpd_server.handler.messages
    assert message.mail_from == "j\u00f6rg@example.com"
    assert "SMTPUTF8" in message.mail_options
    assert "BODY=8BITMIME" in message.mail_options


@pytest.mark.parametrize("aiosmtpd_server", [{"enable_SMTPUTF8": False}], indirect=True)
def test_smtputf8_not_offered(make_client: MakeClient, aiosmtpd_server: Server) -> None:
    async def scenario() -> None:
        async with make_client("127.0.0.1", aiosmtpd_server.port) as client:
            with pytest.raises(SMTPUTF8NotSupportedError):
                await client.send(
                    Envelope("a@example.com", ("b@example.com",), smtputf8=True), b"x"
                )
            with pytest.raises(SMTPUTF8NotSupportedError):
                await client.send(Envelope("\u00e9@example.com", ("b@example.com",)), b"x")

    asyncio.run(scenario())


def test_starttls(make_client: MakeClient, tls_server: Server, client_tls: ssl.SSLContext) -> None:
    async def scenario() -> None:
        client = make_client("127.0.0.1", tls_server.port, use_tls=True, ssl_context=client_tls)
        async with client:
            assert not client.extensions.starttls  # the EHLO after TLS no longer offers it
            await client.send(Envelope("a@example.com", ("b@example.com",)), b"secret\r\n")

    asyncio.run(scenario())
    assert tls_server.handler.messages[0].content == b"secret\r\n"


def test_starttls_with_cafile(
    make_client: MakeClient, tls_server: Server, ca: trustme.CA, tmp_path: Path
) -> None:
    cafile = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(cafile))

    async def scenario() -> None:
        async with make_client("127.0.0.1", tls_server.port, use_tls=True, ssl_cafile=str(cafile)):
            pass

    asyncio.run(scenario())


# aiosmtpd leaks its transport when the client aborts the TLS handshake; that is the server's
# problem, collected here so that its ResourceWarning is not blamed on a later test.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("trust", ["other-ca", "system-default"])
def test_starttls_wrong_certificate_refused(
    make_client: MakeClient, server_tls: ssl.SSLContext, trust: str
) -> None:
    other = ssl.create_default_context()
    trustme.CA().configure_trust(other)  # trusts a different CA
    server = Server(tls_context=server_tls, require_starttls=True)
    server.controller.start()
    try:

        async def scenario() -> None:
            options = {"ssl_context": other} if trust == "other-ca" else {}
            client = make_client("127.0.0.1", server.port, use_tls=True, **options)
            with pytest.raises(SMTPSecurityError, match="TLS failed"):
                await client.connect()
            assert not client.is_connected

        asyncio.run(scenario())
    finally:
        server.controller.stop()
        gc.collect()
    assert server.handler.messages == []


def test_starttls_not_offered(make_client: MakeClient, aiosmtpd_server: Server) -> None:
    async def scenario() -> None:
        client = make_client("127.0.0.1", aiosmtpd_server.port, use_tls=True)
        with pytest.raises(StartTLSNotOfferedError):
            await client.connect()
        assert not client.is_connected

    asyncio.run(scenario())


def test_implicit_tls(
    make_client: MakeClient, server_tls: ssl.SSLContext, client_tls: ssl.SSLContext
) -> None:
    server = Server(ssl_context=server_tls)
    server.controller.start()
    try:

        async def scenario() -> None:
            client = make_client("127.0.0.1", server.port, use_ssl=True, ssl_context=client_tls)
            async with client:
                await client.send(Envelope("a@example.com", ("b@example.com",)), b"x\r\n")

        asyncio.run(scenario())
    finally:
        server.controller.stop()
    assert len(server.handler.messages) == 1


AUTH_SERVER = {"authenticator": _authenticator, "auth_require_tls": False}


@pytest.mark.parametrize("aiosmtpd_server", [AUTH_SERVER], indirect=True)
def test_auth(make_client: MakeClient, aiosmtpd_server: Server) -> None:
    async def scenario() -> None:
        client = make_client(
            "127.0.0.1", aiosmtpd_server.port, username="user", password="s3cret pass"
        )
        async with client:
            await client.send(Envelope("a@example.com", ("b@example.com",)), b"x\r\n")
        assert "s3cret" not in repr(client)

    asyncio.run(scenario())
    assert len(aiosmtpd_server.handler.messages) == 1


@pytest.mark.parametrize("aiosmtpd_server", [AUTH_SERVER], indirect=True)
def test_auth_refused_hides_password(make_client: MakeClient, aiosmtpd_server: Server) -> None:
    async def scenario() -> None:
        client = make_client(
            "127.0.0.1", aiosmtpd_server.port, username="user", password="wrong-pw"
        )
        with pytest.raises(AuthenticationError) as info:
            await client.connect()
        for text in (str(info.value), repr(info.value), repr(info.value.args), repr(client)):
            assert "wrong-pw" not in text
        assert not client.is_connected

    asyncio.run(scenario())


def test_auth_starttls_then_login(
    make_client: MakeClient, server_tls: ssl.SSLContext, client_tls: ssl.SSLContext
) -> None:
    server = Server(tls_context=server_tls, require_starttls=True, authenticator=_authenticator)
    server.controller.start()
    try:

        async def scenario() -> None:
            client = make_client(
                "127.0.0.1", server.port, use_tls=True, ssl_context=client_tls,
                username="user", password="s3cret pass",
            )  # fmt: skip
            async with client:
                await client.send(Envelope("a@example.com", ("b@example.com",)), b"x\r\n")

        asyncio.run(scenario())
    finally:
        server.controller.stop()
    assert len(server.handler.messages) == 1


def test_connection_refused(make_client: MakeClient) -> None:
    async def scenario() -> None:
        with pytest.raises(SMTPConnectError):
            await make_client("127.0.0.1", free_port()).connect()

    asyncio.run(scenario())


def test_greeting_timeout(make_client: MakeClient) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:  # accepts (backlog), never speaks
        port = listener.getsockname()[1]

        async def scenario() -> None:
            client = make_client("127.0.0.1", port, timeout=0.3)
            with pytest.raises(SMTPTimeoutError):
                await client.connect()
            assert not client.is_connected

        asyncio.run(scenario())


def test_send_without_connect(make_client: MakeClient) -> None:
    async def scenario() -> None:
        with pytest.raises(SMTPError, match="not connected"):
            await make_client("127.0.0.1", 1).send(Envelope("a@x", ("b@x",)), b"")

    asyncio.run(scenario())
