"""Django 6.1's API as mailout offers it: backend aliases, conflicting arguments, lazy strings,
local-part-only addresses, and the backend a message is sent through (never cached on it)."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path
from typing import Any

import pytest
from django.utils.functional import lazy

import mailout
from mailout import EmailMessage
from mailout.backends import dummy, filebased, locmem, smtp
from mailout.backends.base import BaseEmailBackend
from mailout.exceptions import ConflictingArgumentsError, ImproperlyConfigured, InvalidMailer
from tests.conftest import SMTPServer

LOCMEM = "mailout.backends.locmem.EmailBackend"
lazy_str = lazy(lambda text: text, str)


def message(**kwargs: Any) -> EmailMessage:
    kwargs.setdefault("to", ["to@example.com"])
    return EmailMessage("Subject", "Body", "from@example.com", **kwargs)


# -- the backend a message goes through ------------------------------------------------------


def test_send_does_not_keep_the_default_backend_on_the_message() -> None:
    mailout.configure({"EMAIL_BACKEND": LOCMEM, "MAILERS": None})
    sent = message()
    assert sent.send() == 1
    assert sent.connection is None
    mailout.configure({"MAILERS": {"default": {"BACKEND": LOCMEM}, "bulk": {"BACKEND": LOCMEM}}})
    assert sent.send(using="bulk") == 1  # raised "using= or a connection" when it was cached
    assert [m.sent_using for m in mailout.outbox] == [None, "bulk"]  # type: ignore[attr-defined]


CONFLICTS = [
    ({"connection": "c", "fail_silently": True}, "fail_silently cannot be used with a connection"),
    ({"connection": "c", "auth_user": "u"}, "auth_user and auth_password cannot be used with"),
    ({"connection": "c", "auth_password": "p"}, "auth_user and auth_password cannot be used"),
    ({"using": "default", "connection": "c"}, "'connection' is not compatible with 'using'."),
    ({"using": "default", "fail_silently": True}, "'fail_silently' is not compatible with"),
    ({"using": "default", "auth_user": "u"}, "'auth_user' and 'auth_password' are not"),
]


@pytest.mark.parametrize(("arguments", "text"), CONFLICTS)
def test_conflicting_arguments_are_refused(arguments: dict[str, Any], text: str) -> None:
    mailout.configure({"MAILERS": {"default": {"BACKEND": LOCMEM}}, "ADMINS": ["a@example.com"]})
    if arguments.get("connection") == "c":
        arguments["connection"] = locmem.EmailBackend()
    calls = [
        lambda: mailout.send_mail("s", "b", "f@example.com", ["t@example.com"], **arguments),
        lambda: mailout.send_mass_mail(
            [("s", "b", "f@example.com", ["t@example.com"])], **arguments
        ),
    ]
    if "auth_user" not in arguments and "auth_password" not in arguments:
        calls.append(lambda: mailout.mail_admins("s", "b", **arguments))
    for call in calls:
        with pytest.raises(ConflictingArgumentsError, match=text) as caught:
            call()
        assert isinstance(caught.value, TypeError)
    assert mailout.outbox == []


def test_message_send_refuses_fail_silently_with_its_connection() -> None:
    sent = message(connection=locmem.EmailBackend())
    with pytest.raises(TypeError, match="fail_silently cannot be used with a connection"):
        sent.send(fail_silently=True)
    with pytest.raises(TypeError, match="'connection' is not compatible with 'using'"):
        sent.send(using="default")
    assert sent.send() == 1


# -- backends built from MAILERS -------------------------------------------------------------


def test_alias_on_every_backend(tmp_path: Path) -> None:
    mailout.configure({"MAILERS": {"a": {"BACKEND": LOCMEM}}})
    assert mailout.mailers["a"].alias == "a"
    assert BaseEmailBackend(alias="x").alias == "x"
    assert dummy.EmailBackend().alias is None
    assert filebased.EmailBackend(alias="f", file_path=tmp_path).alias == "f"
    with pytest.raises(InvalidMailer, match=r"MAILERS\['x'\]: Unknown options 'typo', 'other'"):
        locmem.EmailBackend(alias="x", typo=1, other=2)
    with pytest.raises(TypeError, match="unknown options 'typo'"):
        locmem.EmailBackend(typo=1)  # without an alias too (Django 6.1 only warns)


def test_smtp_backend_from_mailers_ignores_email_settings() -> None:
    mailout.configure({"EMAIL_HOST": "settings.example.com", "EMAIL_PORT": 2525,
                       "EMAIL_HOST_USER": "u", "EMAIL_USE_TLS": True})  # fmt: skip
    backend = smtp.EmailBackend(alias="x", host="mail.example.com")
    assert (backend.host, backend.port, backend.username, backend.password) == (
        "mail.example.com", 25, None, None)  # fmt: skip
    assert (backend.use_tls, backend.use_ssl) == (False, False)
    assert smtp.EmailBackend(alias="x", host="h", use_ssl=True).port == 465
    assert smtp.EmailBackend(alias="x", host="h", use_tls=True).port == 587
    assert smtp.EmailBackend(alias="x", host="h", use_tls=True, port=2587).port == 2587
    assert smtp.EmailBackend().host == "settings.example.com"  # no alias: the settings
    with pytest.raises(InvalidMailer, match="OPTIONS must define 'host'"):
        smtp.EmailBackend(alias="x")
    with pytest.raises(InvalidMailer, match="'use_ssl' and 'use_tls' OPTIONS are incompatible"):
        smtp.EmailBackend(alias="x", host="h", use_ssl=True, use_tls=True)


def test_file_backend_from_mailers_needs_file_path(tmp_path: Path) -> None:
    mailout.configure({"EMAIL_FILE_PATH": str(tmp_path)})
    assert filebased.EmailBackend().file_path == str(tmp_path)
    with pytest.raises(InvalidMailer, match=r"MAILERS\['f'\]: OPTIONS must define 'file_path'"):
        filebased.EmailBackend(alias="f")
    (tmp_path / "file").touch()
    with pytest.raises(InvalidMailer, match="'file_path' is not a directory"):
        filebased.EmailBackend(alias="f", file_path=tmp_path / "file")
    with pytest.raises(ImproperlyConfigured, match="exists, but is not a directory"):
        filebased.EmailBackend(file_path=tmp_path / "file")


def test_send_messages_is_zero_when_open_fails_silently(smtp_server: SMTPServer) -> None:
    backend = smtp.EmailBackend(host="127.0.0.1", port=1, fail_silently=True, timeout=5)
    assert backend.send_messages([message()]) == 0
    assert backend.connection is None


def test_prep_address() -> None:
    backend = smtp.EmailBackend(alias="x", host="h")
    assert backend.prep_address("Ann <ann@bücher.example>") == "ann@xn--bcher-kva.example"
    assert backend.prep_address("åh@åh.example.dk", force_ascii=False) == "åh@åh.example.dk"
    with pytest.raises(ValueError, match="Invalid address"):
        backend.prep_address("åh@example.dk")
    with pytest.raises(ValueError, match="Invalid address"):
        backend.prep_address("a@example.com, b@example.com")


# -- what a message accepts ------------------------------------------------------------------


def test_lazy_strings_and_local_part_only_addresses(smtp_server: SMTPServer) -> None:
    sent = EmailMessage(
        lazy_str("Lazy subject"),
        lazy_str("Lazy body"),
        lazy_str("webmaster"),
        [lazy_str("to@example.com"), "postmaster"],
        headers={"X-Lazy": lazy_str("value")},
    )
    mailout.configure({"ADMINS": [lazy_str("admin@example.com")], "EMAIL_BACKEND": LOCMEM})
    with smtp.EmailBackend(host=smtp_server.host, port=smtp_server.port) as backend:
        assert backend.send_messages([sent]) == 1
    (received,) = smtp_server.received
    assert (received.mail_from, received.rcpt_tos) == (
        "webmaster",
        ["to@example.com", "postmaster"],
    )
    parsed = email.message_from_bytes(received.data, policy=email.policy.default)
    assert (parsed["Subject"], parsed["From"], parsed["X-Lazy"]) == (
        "Lazy subject", "webmaster", "value")  # fmt: skip
    assert parsed.get_content().strip() == "Lazy body"
    assert mailout.mail_admins(lazy_str("Hi"), "b") == 1
    assert mailout.outbox[0].to == ["admin@example.com"]


def test_admins_must_be_a_list_of_addresses() -> None:
    mailout.configure({"ADMINS": "admin@example.com"})
    with pytest.raises(ImproperlyConfigured, match="must be a list of email address strings"):
        mailout.mail_admins("s", "b")


def test_django_error_texts_are_included() -> None:
    with pytest.raises(ValueError, match="Header values may not contain linefeed or carriage"):
        message(to=["Name\nInjected <to@example.com>"]).message()
    with pytest.raises(ValueError, match="content must be provided"):
        message().attach("file.txt")
