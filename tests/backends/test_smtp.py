"""The SMTP backend against a real aiosmtpd server: TLS, AUTH, reuse rules, failures."""

from __future__ import annotations

import smtplib

import pytest

import mailout
from mailout.backends.smtp import EmailBackend
from mailout.exceptions import (
    AuthenticationError,
    SMTPConnectError,
    SMTPSecurityError,
    StartTLSNotOfferedError,
)
from tests.conftest import PASSWORD, USER, SMTPServer, free_port


def message(**kwargs: object) -> mailout.EmailMessage:
    fields: dict[str, object] = {
        "subject": "s",
        "body": "b",
        "from_email": "f@example.com",
        "to": ["t@example.com"],
    }
    fields.update(kwargs)
    return mailout.EmailMessage(**fields)  # type: ignore[arg-type]


def test_settings_are_used(smtp_server: SMTPServer) -> None:
    mailout.configure({"EMAIL_HOST": smtp_server.host, "EMAIL_PORT": smtp_server.port})
    assert mailout.send_mail("s", "b", "f@example.com", ["t@example.com"]) == 1
    assert smtp_server.received[0].rcpt_tos == ["t@example.com"]


def test_closed_backend_opens_and_closes_around_each_call(smtp_server: SMTPServer) -> None:
    backend = EmailBackend(host=smtp_server.host, port=smtp_server.port)
    assert backend.send_messages([message()]) == 1
    assert backend.connection is None
    assert backend.send_messages([message(), message()]) == 2
    assert smtp_server.connections == 2


def test_opened_backend_stays_open(smtp_server: SMTPServer) -> None:
    backend = EmailBackend(host=smtp_server.host, port=smtp_server.port)
    assert backend.open() is True
    assert backend.open() is False
    message(connection=backend).send()
    backend.send_messages([message(), message()])
    assert backend.connection is not None
    backend.close()
    backend.close()  # closing twice is harmless
    assert smtp_server.connections == 1
    assert len(smtp_server.received) == 3


def test_starttls_and_auth(tls_smtp_server: SMTPServer, ca_file: str) -> None:
    backend = EmailBackend(
        host="localhost",
        port=tls_smtp_server.port,
        use_tls=True,
        username=USER,
        password=PASSWORD,
        ssl_cafile=ca_file,
    )
    assert backend.send_messages([message()]) == 1
    assert len(tls_smtp_server.received) == 1


def test_wrong_password_is_refused_and_not_revealed(
    tls_smtp_server: SMTPServer, ca_file: str
) -> None:
    backend = EmailBackend(
        host="localhost",
        port=tls_smtp_server.port,
        use_tls=True,
        username=USER,
        password="wrong-password-123",
        ssl_cafile=ca_file,
    )
    with pytest.raises(AuthenticationError) as info:
        backend.send_messages([message()])
    assert "wrong-password-123" not in str(info.value)
    assert "wrong-password-123" not in repr(backend)
    assert tls_smtp_server.received == []


def test_untrusted_certificate_is_refused(tls_smtp_server: SMTPServer) -> None:
    backend = EmailBackend(host="localhost", port=tls_smtp_server.port, use_tls=True)
    with pytest.raises(SMTPSecurityError, match="certificate"):
        backend.send_messages([message()])
    assert tls_smtp_server.received == []


def test_starttls_required_but_not_offered(smtp_server: SMTPServer) -> None:
    backend = EmailBackend(host=smtp_server.host, port=smtp_server.port, use_tls=True)
    with pytest.raises(StartTLSNotOfferedError, match="STARTTLS"):
        backend.send_messages([message()])
    assert smtp_server.received == []


def test_fail_silently_on_unreachable_server() -> None:
    backend = EmailBackend(host="127.0.0.1", port=free_port(), fail_silently=True, timeout=2)
    assert backend.send_messages([message()]) == 0
    loud = EmailBackend(host="127.0.0.1", port=free_port(), timeout=2)
    with pytest.raises(SMTPConnectError) as info:
        loud.send_messages([message()])
    assert isinstance(info.value, ConnectionError)
    assert isinstance(info.value, smtplib.SMTPException)  # what Django-era code catches


def test_send_mail_auth_arguments_reach_the_server(
    tls_smtp_server: SMTPServer, ca_file: str
) -> None:
    mailout.configure(
        {
            "EMAIL_HOST": "localhost",
            "EMAIL_PORT": tls_smtp_server.port,
            "EMAIL_USE_TLS": True,
            "EMAIL_SSL_CAFILE": ca_file,
        }
    )
    sent = mailout.send_mail(
        "s", "b", "f@example.com", ["t@example.com"], auth_user=USER, auth_password=PASSWORD
    )
    assert sent == 1


def test_smtputf8_address(smtp_server: SMTPServer) -> None:
    backend = EmailBackend(host=smtp_server.host, port=smtp_server.port)
    assert backend.send_messages([message(to=["josé@example.com"])]) == 1
    [received] = smtp_server.received
    assert received.smtp_utf8
    assert received.rcpt_tos == ["josé@example.com"]


def test_idna_domain_in_envelope_and_headers(smtp_server: SMTPServer) -> None:
    backend = EmailBackend(host=smtp_server.host, port=smtp_server.port)
    backend.send_messages([message(to=["Ana <ana@bücher.example>"])])
    [received] = smtp_server.received
    assert received.rcpt_tos == ["ana@xn--bcher-kva.example"]
    assert received.message["To"] == "Ana <ana@xn--bcher-kva.example>"


def test_repr_has_no_password() -> None:
    backend = EmailBackend(host="h", port=25, username="u", password="pw-secret")
    assert "pw-secret" not in repr(backend)
    assert "pw-secret" not in str(vars(backend).get("host"))


def test_big_batch_is_checked_whole_then_sent_in_slices(
    smtp_server: SMTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # So that a small batch spans slices, and the encoding waits for the network.
    monkeypatch.setattr("mailout.backends._batch.SLICE", 10)
    monkeypatch.setattr("mailout.smtp.pool.MAX_AHEAD", 10)
    backend = EmailBackend(host=smtp_server.host, port=smtp_server.port)
    batch = [message(subject=f"m{i}") for i in range(25)]
    batch.append(message(subject="bad\nBcc: evil@example.com"))
    with pytest.raises(mailout.BadHeaderError):
        backend.send_messages(batch)
    assert smtp_server.received == []  # the bad last message stopped the whole batch
    assert smtp_server.connections == 0  # found before connecting
    assert backend.send_messages(batch[:25]) == 25
    assert [r.message["Subject"] for r in smtp_server.received] == [f"m{i}" for i in range(25)]
    assert len(backend.results) == 25


def test_a_message_read_back_from_the_queue_goes_as_it_was_stored(
    smtp_server: SMTPServer,
) -> None:
    # wire.prepare() takes a message's stored bytes (mailout.queue sets wire_bytes) as they are:
    # the same Message-ID and Date on every attempt; its envelope still comes from its fields.
    stored = mailout.wire.render(message(subject="stored once"))
    again = message(subject="stored once", bcc=["b@example.com"])
    again.wire_bytes = stored  # type: ignore[attr-defined]
    assert EmailBackend(host=smtp_server.host, port=smtp_server.port).send_messages([again]) == 1
    [received] = smtp_server.received
    assert received.data.replace(b"\r\n", b"\n") == stored.replace(b"\r\n", b"\n")
    assert received.rcpt_tos == ["t@example.com", "b@example.com"]
