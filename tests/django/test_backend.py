"""mailout.django.EmailBackend in a Django project: configuration both ways, Django's contract,
per-message results, failures, errors a project catches, mailout's own messages.

Tests of Django 6.1's MAILERS exist only where that Django is installed (tests/django runs
under both); nothing here is skipped.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import smtplib
from typing import Any

import pytest
from django.core import mail
from django.core.mail import EmailMessage, EmailMultiAlternatives
from django.core.mail.backends.base import BaseEmailBackend as DjangoBaseEmailBackend

import mailout
from mailout import wire
from mailout.django import EmailBackend
from mailout.exceptions import SMTPConnectError
from mailout.smtp import SendResult
from tests.conftest import SMTPServer, free_port
from tests.django.helpers import HAS_MAILERS, MODERN, mail_settings, quiet_overrides
from tests.servers.faulty import FaultyServer, Rule, Script


def shop_message(to: str = "ana@example.com", subject: str = "Order shipped") -> Any:
    return EmailMessage(subject, "Your order shipped.\n", None, [to])


def default_backend() -> Any:
    """What a project's code gets: Django 6.1's mailers.default (built from MAILERS, or from
    the EMAIL_* settings without), Django 5.2's get_connection()."""
    if HAS_MAILERS:
        return mail.mailers.default
    return mail.get_connection()


def test_one_setting_gives_djangos_api_mailouts_backend(shop_mail: SMTPServer) -> None:
    backend = default_backend()
    assert isinstance(backend, EmailBackend)
    assert isinstance(backend, DjangoBaseEmailBackend)
    assert (backend.host, backend.port) == (shop_mail.host, shop_mail.port)
    assert mail.send_mail("Hi", "Body.\n", None, ["ana@example.com"]) == 1
    datatuple = [("A", "a\n", None, ["a@example.com"]), ("B", "b\n", None, ["b@example.org"])]
    assert mail.send_mass_mail(datatuple) == 2
    assert shop_message().send() == 1
    assert [r.rcpt_tos for r in shop_mail.received] == [
        ["ana@example.com"],
        ["a@example.com"],
        ["b@example.org"],
        ["ana@example.com"],
    ]
    assert {r.mail_from for r in shop_mail.received} == {"shop@example.com"}
    assert wire.stats.fast == 4  # Django's messages, rendered by mailout's fast path


def test_email_settings_and_mailouts_own(smtp_server: SMTPServer) -> None:
    with mail_settings("settings", smtp_server.host, smtp_server.port, pool_size=3, timeout=7):
        backend = default_backend()
    assert (backend.pool_options.size, backend.timeout, backend.alias) == (3, 7, None)


def test_djangos_default_timeout_means_mailouts_30_seconds(smtp_server: SMTPServer) -> None:
    """Django's EMAIL_TIMEOUT default, None, would let a dead server hang a worker forever."""
    with mail_settings("settings", smtp_server.host, smtp_server.port):
        assert default_backend().timeout == 30.0
    with mail_settings("settings", smtp_server.host, smtp_server.port, timeout=None):
        assert default_backend().timeout is None  # set explicitly: the project's choice


if HAS_MAILERS:

    def test_mailers_options_are_the_whole_configuration(smtp_server: SMTPServer) -> None:
        bulk = {"BACKEND": "mailout.django.EmailBackend", "OPTIONS": {"host": "bulk.example"}}
        own = {"host": smtp_server.host, "port": smtp_server.port, "pool_size": 2}
        mailers = {"default": {"BACKEND": "mailout.django.EmailBackend", "OPTIONS": own}}
        with quiet_overrides(MAILERS={**mailers, "bulk": bulk}):
            default, other = mail.mailers.default, mail.mailers["bulk"]
            assert mail.send_mail("Hi", "Body.\n", None, ["ana@example.com"], using="default")
        assert (default.alias, default.pool_options.size, default.timeout) == ("default", 2, 30)
        assert (other.alias, other.host, other.port) == ("bulk", "bulk.example", 25)
        assert len(smtp_server.received) == 1

    def test_deprecated_arguments_reach_the_backend(smtp_server: SMTPServer) -> None:
        """send_mail(fail_silently=True) with MAILERS: Django 6.1 passes fail_silently to the
        default mailer along with _ignore_unknown_kwargs, which the backend accepts."""
        from django.utils.deprecation import RemovedInDjango2028Warning

        with (
            mail_settings("mailers", "127.0.0.1", free_port()),
            pytest.warns(RemovedInDjango2028Warning, match="fail_silently"),
        ):
            assert mail.send_mail("Hi", "Body.\n", None, ["a@example.com"], fail_silently=True) == 0

    def test_an_unknown_option_names_the_mailer() -> None:
        config = {"BACKEND": "mailout.django.EmailBackend", "OPTIONS": {"host": "h", "typo": 1}}
        with (
            quiet_overrides(MAILERS={"default": config}),
            pytest.raises(
                mail.InvalidMailer, match=r"MAILERS\['default'\]: Unknown options 'typo'"
            ),
        ):
            mail.mailers.default  # noqa: B018


def test_open_backend_reuses_its_connections(smtp_server: SMTPServer) -> None:
    backend = EmailBackend(host=smtp_server.host, port=smtp_server.port)
    with backend:
        assert backend.send_messages([shop_message("a@example.com")]) == 1
        assert backend.send_messages([shop_message("b@example.com"), shop_message()]) == 2
    assert smtp_server.connections == 1
    assert backend.connection is None


def test_per_message_results_and_a_refused_recipient() -> None:
    refuse = Rule(r"RCPT TO:<gone@", reply="550 5.1.1 no such user")
    with FaultyServer(Script(rules=[refuse])) as server:
        backend = EmailBackend(host=server.host, port=server.port)
        message = EmailMessage("Hi", "Body.\n", None, ["ana@example.com", "gone@example.com"])
        assert backend.send_messages([message, shop_message("bo@example.com")]) == 2
        first, second = backend.results
        assert isinstance(first, SendResult)
        assert isinstance(second, SendResult)
        assert list(first.refused) == ["gone@example.com"]
        assert first.refused["gone@example.com"].code == 550
        assert [t.recipients for t in server.transactions] == [
            ("ana@example.com",),
            ("bo@example.com",),
        ]


def test_fail_silently_as_django() -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(SMTPConnectError) as raised:
        EmailBackend(host="127.0.0.1", port=port, timeout=5).send_messages([shop_message()])
    # What a project written for Django's smtp backend catches.
    assert isinstance(raised.value, smtplib.SMTPException | OSError)
    quiet = EmailBackend(host="127.0.0.1", port=port, timeout=5, fail_silently=True)
    assert quiet.send_messages([shop_message()]) == 0


def test_bad_input_raises_djangos_error_and_sends_nothing(smtp_server: SMTPServer) -> None:
    """A header-injection attempt: Django's own exception (BadHeaderError under 5.2, ValueError
    under 6.1), raised before any message of the batch is sent."""
    backend = EmailBackend(host=smtp_server.host, port=smtp_server.port)
    bad = shop_message(subject="Hi\nBcc: victim@example.com")
    with pytest.raises(ValueError, match=r"newline|linefeed") as raised:
        backend.send_messages([shop_message(), bad])
    if not MODERN:
        from django.core.mail import BadHeaderError

        assert isinstance(raised.value, BadHeaderError)
    assert smtp_server.received == []


class NulHeader(EmailMessage):  # type: ignore[misc]
    """An override that writes a header Django lets through but mailout never sends."""

    def message(self, **kwargs: Any) -> Any:
        msg = super().message(**kwargs)
        msg["X-Note"] = "a\x00b"
        return msg


def test_what_djangos_path_writes_is_checked_too(smtp_server: SMTPServer) -> None:
    backend = EmailBackend(host=smtp_server.host, port=smtp_server.port)
    with pytest.raises(ValueError, match="NUL") as raised:
        backend.send_messages([NulHeader("Hi", "Body.\n", None, ["ana@example.com"])])
    assert isinstance(raised.value, mailout.BadHeaderError)
    if not MODERN:
        from django.core.mail import BadHeaderError

        assert isinstance(raised.value, BadHeaderError)  # a project's except clause catches it
    assert smtp_server.received == []


def test_a_non_ascii_local_part_is_sent_with_smtputf8(smtp_server: SMTPServer) -> None:
    """Where Django's smtp backend refuses it (6.1) or mangles it (5.2), mailout sends it."""
    backend = EmailBackend(host=smtp_server.host, port=smtp_server.port)
    assert backend.send_messages([shop_message("Jürgen <jürgen@example.de>")]) == 1
    [received] = smtp_server.received
    assert received.smtp_utf8
    assert received.rcpt_tos == ["jürgen@example.de"]
    parsed = email.message_from_string(received.data.decode(), policy=email.policy.default)
    [address] = parsed["To"].addresses
    assert (address.display_name, address.username) == ("Jürgen", "jürgen")


def test_mailouts_own_messages_and_api(shop_mail: SMTPServer) -> None:
    """mailout's API in a Django project reads Django's settings and this backend."""
    assert mailout.send_mail("From mailout", "Body.\n", None, ["ana@example.com"]) == 1
    message = mailout.EmailMultiAlternatives("Both", "Text.\n", None, ["bo@example.com"])
    message.attach_alternative("<p>HTML</p>", "text/html")
    assert EmailBackend(host=shop_mail.host, port=shop_mail.port).send_messages([message]) == 1
    first, second = (r.message for r in shop_mail.received)
    assert first["From"] == "Example Shop <shop@example.com>"  # DEFAULT_FROM_EMAIL, Django's
    assert second.get_body(("html",)).get_content() == "<p>HTML</p>\n"


def test_async_sending_is_native(smtp_server: SMTPServer) -> None:
    backend = EmailBackend(host=smtp_server.host, port=smtp_server.port)
    multi = EmailMultiAlternatives("Async", "Text.\n", None, ["ana@example.com"])
    multi.attach_alternative("<p>HTML</p>\n", "text/html")

    async def send() -> int:
        async with backend:
            return await backend.asend_messages([multi, shop_message("bo@example.com")])

    assert asyncio.run(send()) == 2
    assert [r.rcpt_tos for r in smtp_server.received] == [["ana@example.com"], ["bo@example.com"]]
    parsed = email.message_from_bytes(smtp_server.received[0].data, policy=email.policy.default)
    assert parsed["Subject"] == "Async"
