"""mailout.django's async API: Django's arguments and messages, natively async on mailout's
backend, in a worker thread (asgiref's sync_to_async) on any other."""

from __future__ import annotations

import asyncio
import email
import email.policy
import threading
import warnings
from typing import Any

import pytest
from django.core import mail
from django.core.mail import EmailMessage
from django.core.mail.backends.locmem import EmailBackend as DjangoLocmem

import mailout
from mailout.django import (
    EmailBackend,
    amail_admins,
    amail_managers,
    asend,
    asend_mail,
    asend_mass_mail,
    asend_messages,
)
from tests.conftest import SMTPServer
from tests.django.helpers import HAS_MAILERS, mail_settings, quiet_overrides, reference_backend


def subjects(server: SMTPServer) -> list[str]:
    return [str(received.message["Subject"]) for received in server.received]


def test_asend_mail(shop_mail: SMTPServer) -> None:
    sent = asyncio.run(
        asend_mail("Welcome", "Text.\n", None, ["ana@example.com"], html_message="<p>HTML</p>\n")
    )
    assert sent == 1
    [received] = shop_mail.received
    assert (received.mail_from, received.rcpt_tos) == ("shop@example.com", ["ana@example.com"])
    message = received.message
    assert message.get_body(("plain",)).get_content() == "Text.\n"
    assert message.get_body(("html",)).get_content() == "<p>HTML</p>\n"


def test_asend_mass_mail_uses_one_connection(shop_mail: SMTPServer) -> None:
    datatuple = [(f"S{n}", "Body.\n", None, [f"c{n}@example.com"]) for n in range(5)]
    assert asyncio.run(asend_mass_mail(datatuple)) == 5
    assert subjects(shop_mail) == [f"S{n}" for n in range(5)]
    assert shop_mail.connections == 1


def test_amail_admins_and_managers(shop_mail: SMTPServer) -> None:
    assert asyncio.run(amail_admins("Disk full", "On web-1.\n")) == 1
    assert asyncio.run(amail_managers("New order", "#1001\n", html_message="<p>#1001</p>")) == 1
    admins, managers = shop_mail.received
    assert (admins.mail_from, admins.rcpt_tos) == ("errors@example.com", ["ops@example.com"])
    assert managers.rcpt_tos == ["sales@example.com", "boss@example.com"]
    assert subjects(shop_mail) == ["[Django] Disk full", "[Django] New order"]


def test_amail_admins_without_admins_sends_nothing(shop_mail: SMTPServer) -> None:
    with quiet_overrides(ADMINS=[]):
        assert asyncio.run(amail_admins("Disk full", "On web-1.\n")) == 0
    with quiet_overrides(ADMINS=[("Ops", "ops@example.com")]):  # Django's older pairs
        assert asyncio.run(amail_admins("Disk full", "On web-1.\n")) == 1
    assert [r.rcpt_tos for r in shop_mail.received] == [["ops@example.com"]]


def test_asend_a_message(shop_mail: SMTPServer) -> None:
    message = EmailMessage("One", "Body.\n", None, ["ana@example.com"])
    assert asyncio.run(asend(message)) == 1
    assert asyncio.run(asend(EmailMessage("Nobody", "Body.\n"))) == 0
    mailout_message = mailout.EmailMessage("Two", "Body.\n", None, ["bo@example.com"])
    assert asyncio.run(asend(mailout_message)) == 1
    assert subjects(shop_mail) == ["One", "Two"]


def test_a_given_connection_is_used(smtp_server: SMTPServer) -> None:
    backend = EmailBackend(host=smtp_server.host, port=smtp_server.port)
    assert asyncio.run(asend_mail("Hi", "Body.\n", None, ["a@example.com"], connection=backend))
    with warnings.catch_warnings():  # Django 6.1 deprecates connection= (mailout takes it)
        warnings.simplefilter("ignore")
        message = EmailMessage("Mine", "Body.\n", None, ["b@example.com"], connection=backend)
    assert asyncio.run(asend(message)) == 1
    assert subjects(smtp_server) == ["Hi", "Mine"]


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda b: asend_mail("s", "b", None, ["a@x.io"], connection=b, fail_silently=True),
         "fail_silently cannot be used with a connection"),
        (lambda b: asend_mail("s", "b", None, ["a@x.io"], connection=b, auth_user="u"),
         "auth_user and auth_password cannot be used with a connection"),
        (lambda b: amail_admins("s", "b", connection=b, using="default"),
         "'connection' is not compatible with 'using'"),
    ],
)  # fmt: skip
def test_conflicting_arguments_are_refused(call: Any, error: str) -> None:
    with pytest.raises(TypeError, match=error):
        asyncio.run(call(EmailBackend(host="127.0.0.1", port=9)))


def test_a_sync_backend_runs_in_a_worker_thread(smtp_server: SMTPServer) -> None:
    """Django's own smtp backend (no asend_messages) does not block the event loop."""
    threads: list[int] = []

    class Recording(DjangoLocmem):  # type: ignore[misc]
        def send_messages(self, messages: Any) -> int:
            threads.append(threading.get_ident())
            return int(super().send_messages(messages))

    async def main() -> tuple[int, int]:
        sent = await asend_messages(Recording(), [EmailMessage("L", "b", None, ["a@x.io"])])
        return sent, threading.get_ident()

    mail.outbox = []
    sent, loop_thread = asyncio.run(main())
    assert sent == 1
    assert threads
    assert threads[0] != loop_thread
    assert [m.subject for m in mail.outbox] == ["L"]
    reference = reference_backend(smtp_server.host, smtp_server.port)
    assert asyncio.run(asend_mail("Via Django", "b\n", None, ["a@x.io"], connection=reference))
    assert subjects(smtp_server) == ["Via Django"]


if HAS_MAILERS:

    def test_using_names_a_mailer(smtp_server: SMTPServer) -> None:
        config = {"BACKEND": "mailout.django.EmailBackend"}
        mailers = {
            "default": {**config, "OPTIONS": {"host": "127.0.0.1", "port": 9}},
            "bulk": {**config, "OPTIONS": {"host": smtp_server.host, "port": smtp_server.port}},
        }
        with quiet_overrides(MAILERS=mailers):
            assert asyncio.run(asend_mail("Bulk", "b\n", None, ["a@x.io"], using="bulk")) == 1
            message = EmailMessage("Bulk 2", "b\n", None, ["a@x.io"])
            assert asyncio.run(asend(message, using="bulk")) == 1
            assert asyncio.run(amail_admins("Bulk 3", "b\n", using="bulk")) == 1
        assert subjects(smtp_server) == ["Bulk", "Bulk 2", "[Django] Bulk 3"]

else:

    def test_using_needs_django_61(smtp_server: SMTPServer) -> None:
        with (
            mail_settings("settings", smtp_server.host, smtp_server.port),
            pytest.raises(TypeError, match=r"needs Django 6\.1"),
        ):
            asyncio.run(asend_mail("s", "b", None, ["a@x.io"], using="bulk"))
        assert smtp_server.received == []


def test_what_arrives_parses(shop_mail: SMTPServer) -> None:
    asyncio.run(asend_mail("Grüße", "Schön.\n", "Zoë <zoe@example.com>", ["ana@example.com"]))
    [received] = shop_mail.received
    message = email.message_from_bytes(received.data, policy=email.policy.default)
    assert (message["Subject"], message["From"].addresses[0].display_name) == ("Grüße", "Zoë")
