"""SMTP attacks at the backend level, over real sockets: downgrade, injection, smuggling, leaks.

- STARTTLS stripping: a server (or a man in the middle) that hides STARTTLS must not get the
  message or the credentials in clear text.
- STARTTLS response injection (RFC 3207 §4.2): bytes the server sent along with ``220`` are
  discarded, never read as replies after the handshake.
- Certificates are verified: an untrusted CA or a name that does not match is refused.
- SMTP smuggling: no bare CR or LF reaches the wire, so ``\\n.\\r\\n`` in a body can never end
  the message early on a lenient server.
- AUTH is refused over plain text to a non-loopback host unless explicitly allowed.
- No credential in any log record, repr, exception message, ``args`` or pickle.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import pickle
import socket
import subprocess
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

import mailout
from mailout.backends.smtp import EmailBackend
from mailout.exceptions import (
    AuthenticationError,
    SMTPError,
    SMTPSecurityError,
    StartTLSNotOfferedError,
)
from mailout.smtp import Envelope, SMTPClient
from tests.servers.faulty import FaultyServer, Rule, Script
from tests.servers.script import DEFAULT_EXTENSIONS

USER = "user"
PASSWORD = "pa55-W0rd-Secret!"
WRONG_PASSWORD = "wr0ng-Secret-Passw0rd"
NO_STARTTLS = tuple(e for e in DEFAULT_EXTENSIONS if e != "STARTTLS")
NO_CHUNKING = tuple(e for e in DEFAULT_EXTENSIONS if e != "CHUNKING")


def message(**fields: object) -> mailout.EmailMessage:
    values: dict[str, object] = {
        "subject": "s",
        "body": "body\n",
        "from_email": "from@example.com",
        "to": ["to@example.com"],
    }
    values.update(fields)
    return mailout.EmailMessage(**values)  # type: ignore[arg-type]


def ca_file(srv: FaultyServer, tmp_path: Path) -> str:
    path = tmp_path / "faulty-ca.pem"
    srv.ca.cert_pem.write_to_path(str(path))
    return str(path)


def verbs(srv: FaultyServer) -> list[str]:
    return [c.split(" ")[0].split(":")[0].upper() for c in srv.commands]


# -- STARTTLS stripping -----------------------------------------------------------------------


def test_stripped_starttls_sends_nothing(tmp_path: Path) -> None:
    with FaultyServer(Script(extensions=NO_STARTTLS)) as srv:
        b = EmailBackend(
            host=srv.host,
            port=srv.port,
            use_tls=True,
            username=USER,
            password=PASSWORD,
            ssl_cafile=ca_file(srv, tmp_path),
            timeout=5.0,
        )
        with pytest.raises(StartTLSNotOfferedError):
            b.send_messages([message()])
        assert srv.transactions == []
        assert "AUTH" not in verbs(srv)  # no credentials in clear text
        assert "MAIL" not in verbs(srv)
        assert set(verbs(srv)) <= {"EHLO", "QUIT"}


def test_stripped_starttls_is_not_silenced_into_plain_text(tmp_path: Path) -> None:
    # fail_silently hides the error, never the downgrade: still nothing is sent.
    with FaultyServer(Script(extensions=NO_STARTTLS)) as srv:
        b = EmailBackend(
            host=srv.host,
            port=srv.port,
            use_tls=True,
            ssl_cafile=ca_file(srv, tmp_path),
            fail_silently=True,
            timeout=5.0,
        )
        assert b.send_messages([message()]) == 0
        assert srv.transactions == []


# -- STARTTLS response injection ---------------------------------------------------------------


@pytest.mark.parametrize(
    "inject",
    [
        b"250 2.0.0 injected reply\r\n",
        b"554 5.7.0 injected refusal\r\n",
        b"250-faulty.test\r\n250 AUTH PLAIN\r\n250 2.1.0 OK\r\n250 2.1.5 OK\r\n",
    ],
    ids=["one-ok", "one-refusal", "several"],
)
def test_bytes_after_starttls_220_are_discarded(tmp_path: Path, inject: bytes) -> None:
    with FaultyServer(Script(starttls_inject=inject)) as srv:
        b = EmailBackend(
            host="localhost",
            port=srv.port,
            use_tls=True,
            username=USER,
            password="password",
            ssl_cafile=ca_file(srv, tmp_path),
            timeout=5.0,
        )
        assert b.send_messages([message(), message(to=["second@example.com"])]) == 2
        # Replies stayed paired with their commands: each message has its own recipient.
        assert [t.recipients for t in srv.transactions] == [
            ("to@example.com",),
            ("second@example.com",),
        ]
        assert all(t.tls and t.user == USER for t in srv.transactions)
        tls_at = verbs(srv).index("STARTTLS")
        assert verbs(srv)[: tls_at + 3] == ["EHLO", "STARTTLS", "EHLO", "AUTH"]
        assert srv.errors == []


# -- certificates -----------------------------------------------------------------------------


def test_untrusted_certificate_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    with FaultyServer() as srv:
        b = EmailBackend(
            host="localhost",
            port=srv.port,
            use_tls=True,
            username=USER,
            password=PASSWORD,
            ssl_cafile=str(other),
            timeout=5.0,
        )
        with pytest.raises(SMTPSecurityError, match=r"(?i)certificate"):
            b.send_messages([message()])
        assert srv.transactions == []
        assert "AUTH" not in verbs(srv)
        assert "MAIL" not in verbs(srv)


def test_system_store_does_not_trust_a_private_ca() -> None:
    with FaultyServer() as srv:
        b = EmailBackend(host="localhost", port=srv.port, use_tls=True, timeout=5.0)
        with pytest.raises(SMTPSecurityError):
            b.send_messages([message()])
        assert srv.transactions == []


def test_trusted_certificate_is_accepted(tmp_path: Path) -> None:
    with FaultyServer() as srv:
        b = EmailBackend(
            host="localhost",
            port=srv.port,
            use_tls=True,
            ssl_cafile=ca_file(srv, tmp_path),
            timeout=5.0,
        )
        assert b.send_messages([message()]) == 1
        assert srv.transactions[0].tls


# -- SMTP smuggling -------------------------------------------------------------------------------

SMUGGLING_BODIES = [
    "first\n.\r\nMAIL FROM:<evil@attacker.test>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\n"
    "Subject: smuggled\r\n\r\nevil\r\n.\r\nlast\n",
    "first\r\n.\nMAIL FROM:<evil@attacker.test>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\n"
    "evil\r\n.\nlast\n",
    "first\r.\r\nMAIL FROM:<evil@attacker.test>\r\n.\rlast\n",
    "first\n.\nMAIL FROM:<evil@attacker.test>\n.\n\nlast\n",
]


def assert_one_clean_message(srv: FaultyServer, content: bytes | None = None) -> None:
    [transaction] = srv.transactions
    assert "MAIL FROM:<evil@attacker.test>" not in srv.commands
    assert transaction.recipients == ("to@example.com",)
    body = transaction.content
    # No bare CR or LF reached the server: a lenient server cannot be made to see an end.
    assert b"\n" not in body.replace(b"\r\n", b"")
    assert b"\r" not in body.replace(b"\r\n", b"")
    assert b"first" in body
    assert body.rstrip(b"\r\n").endswith(b"last")
    assert b"MAIL FROM:<evil@attacker.test>" in body  # kept as text, inside the one message
    if content is not None:
        assert body == content


@pytest.mark.parametrize("body", SMUGGLING_BODIES)
@pytest.mark.parametrize("extensions", [NO_CHUNKING, DEFAULT_EXTENSIONS], ids=["DATA", "BDAT"])
def test_smuggled_end_of_data_in_a_body(body: str, extensions: tuple[str, ...]) -> None:
    with FaultyServer(Script(extensions=extensions)) as srv:
        b = EmailBackend(host=srv.host, port=srv.port, timeout=5.0)
        assert b.send_messages([message(body=body)]) == 1
        assert_one_clean_message(srv)


@pytest.mark.parametrize("body", SMUGGLING_BODIES)
@pytest.mark.parametrize("extensions", [NO_CHUNKING, DEFAULT_EXTENSIONS], ids=["DATA", "BDAT"])
def test_smuggled_end_of_data_in_raw_content(body: str, extensions: tuple[str, ...]) -> None:
    # Raw bytes straight to the client, past the email serialiser that also normalises.
    raw = b"Subject: raw\r\n\r\n" + body.encode()
    with FaultyServer(Script(extensions=extensions)) as srv:
        with SMTPClient(srv.host, srv.port, timeout=5.0) as client:
            client.send(Envelope("from@example.com", ("to@example.com",)), raw)
        assert_one_clean_message(srv)
        lines = [line for line in srv.transactions[0].content.split(b"\r\n") if line == b"."]
        assert len(lines) >= 1  # the lone dots arrived as content (dot-stuffed on the wire)


# -- AUTH over plain text to a non-loopback host ---------------------------------------------


def _candidate_addresses() -> Iterator[str]:
    with contextlib.suppress(OSError):
        yield socket.gethostbyname(socket.gethostname())
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))  # UDP: sends nothing, only picks the outgoing address
        yield probe.getsockname()[0]
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            ["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True, timeout=5
        ).stdout
        for line in out.splitlines():
            parts = line.split()
            if "inet" in parts:
                yield parts[parts.index("inet") + 1].split("/")[0]


def _non_loopback_address() -> str | None:
    for address in _candidate_addresses():
        if address.startswith("127.") or address == "0.0.0.0":
            continue
        try:
            with socket.socket() as sock:
                sock.bind((address, 0))
        except OSError:
            continue
        return address
    return None


@pytest.fixture(scope="module")
def lan_address() -> str:
    address = _non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to bind a server to")
    return address


def test_auth_in_clear_to_a_remote_host_is_refused(lan_address: str) -> None:
    with FaultyServer(Script(extensions=NO_STARTTLS), host=lan_address) as srv:
        b = EmailBackend(
            host=lan_address, port=srv.port, username=USER, password=PASSWORD, timeout=5.0
        )
        with pytest.raises(SMTPSecurityError, match="unencrypted") as caught:
            b.send_messages([message()])
        assert PASSWORD not in str(caught.value)
        assert "AUTH" not in verbs(srv)
        assert srv.transactions == []
        assert srv.connections == 1


def test_auth_in_clear_to_a_remote_host_when_allowed(lan_address: str) -> None:
    with FaultyServer(
        Script(extensions=NO_STARTTLS, users={USER: PASSWORD}), host=lan_address
    ) as srv:
        b = EmailBackend(
            host=lan_address,
            port=srv.port,
            username=USER,
            password=PASSWORD,
            allow_insecure_auth=True,
            timeout=5.0,
        )
        assert b.send_messages([message()]) == 1
        assert srv.transactions[0].user == USER
        assert not srv.transactions[0].tls


def test_auth_to_a_remote_host_over_starttls(lan_address: str, tmp_path: Path) -> None:
    # The certificate names localhost, 127.0.0.1 and faulty.test, not the LAN address:
    # a name mismatch is refused like an untrusted CA.
    with FaultyServer(Script(users={USER: PASSWORD}), host=lan_address) as srv:
        b = EmailBackend(
            host=lan_address,
            port=srv.port,
            use_tls=True,
            username=USER,
            password=PASSWORD,
            ssl_cafile=ca_file(srv, tmp_path),
            timeout=5.0,
        )
        with pytest.raises(SMTPSecurityError):
            b.send_messages([message()])
        assert "AUTH" not in verbs(srv)


def test_auth_in_clear_to_loopback_is_allowed() -> None:
    with FaultyServer(Script(extensions=NO_STARTTLS, users={USER: PASSWORD})) as srv:
        b = EmailBackend(
            host=srv.host, port=srv.port, username=USER, password=PASSWORD, timeout=5.0
        )
        assert b.send_messages([message()]) == 1
        assert srv.transactions[0].user == USER


# -- no credential anywhere -----------------------------------------------------------------------


def secrets(password: str) -> list[str]:
    """The password and every encoding of it that goes on the wire."""
    b64 = base64.b64encode
    return [
        password,
        b64(f"\0{USER}\0{password}".encode()).decode(),  # AUTH PLAIN
        b64(password.encode()).decode(),  # AUTH LOGIN's answer
        repr(password)[1:-1],
    ]


def exception_texts(exc: BaseException) -> list[str]:
    texts = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        texts += [str(current), repr(current), repr(current.args)]
        texts += [repr(getattr(current, name, None)) for name in ("reply", "refused")]
        current = current.__cause__ or current.__context__
    texts.append("".join(traceback.format_exception(exc)))
    texts.append(repr(pickle.dumps(exc)))
    return texts


def assert_no_secret(texts: list[str], password: str) -> None:
    for secret in secrets(password):
        for text in texts:
            assert secret not in text, f"credential leaked in {text[:200]!r}"


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
@pytest.mark.parametrize("password", [PASSWORD, WRONG_PASSWORD], ids=["accepted", "refused"])
def test_no_credential_in_logs_reprs_or_errors(
    caplog: pytest.LogCaptureFixture, tmp_path: Path, mechanism: str, password: str
) -> None:
    caplog.set_level(logging.DEBUG, logger="mailout")
    extensions = tuple(e for e in DEFAULT_EXTENSIONS if not e.startswith("AUTH"))
    script = Script(
        extensions=(*extensions, f"AUTH {mechanism}"),
        users={USER: PASSWORD},
        rules=[Rule(r"RCPT TO:<nobody@", reply="550 5.1.1 no such user")],
    )
    texts: list[str] = []
    with FaultyServer(script) as srv:
        b = EmailBackend(
            host="localhost",
            port=srv.port,
            use_tls=True,
            username=USER,
            password=password,
            ssl_cafile=ca_file(srv, tmp_path),
            timeout=5.0,
        )
        texts += [repr(b), str(b), repr(b._make_client())]
        msg = message(to=["to@example.com", "nobody@example.com"])
        if password == PASSWORD:
            assert b.send_messages([msg]) == 1
            assert caplog.records  # the refused recipient was logged: capture works
            b.open()
            texts += [repr(b), repr(b.connection), repr(b.results)]
            b.close()
        else:
            with pytest.raises(AuthenticationError) as caught:
                b.send_messages([msg])
            assert caught.value.reply.code == 535
            assert not caught.value.is_transient
            texts += exception_texts(caught.value)
            # The server's reply is kept; the command that carried the credentials is not.
            assert caught.value.reply.command.upper() in ("AUTH", "AUTH-RESPONSE", "")
        # With fail_silently the error still lands somewhere: the results.
        b.fail_silently = True
        b.send_messages([msg])
        texts += [repr(b.results)]
        for result in b.results:
            if isinstance(result, SMTPError):
                texts += exception_texts(result)
    for record in caplog.records:
        texts += [record.getMessage(), repr(record.args), record.exc_text or ""]
        if record.exc_info and record.exc_info[1] is not None:
            texts += exception_texts(record.exc_info[1])
    texts += [caplog.text]
    assert_no_secret(texts, password)


def test_no_credential_in_the_error_of_an_insecure_auth_refusal(lan_address: str) -> None:
    with FaultyServer(Script(extensions=NO_STARTTLS), host=lan_address) as srv:
        b = EmailBackend(
            host=lan_address, port=srv.port, username=USER, password=PASSWORD, timeout=5.0
        )
        with pytest.raises(SMTPSecurityError) as caught:
            b.send_messages([message()])
        assert_no_secret([*exception_texts(caught.value), repr(b)], PASSWORD)
