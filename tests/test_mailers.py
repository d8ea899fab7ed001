"""Named mailers (MAILERS, mailers[alias], using=) next to the older EMAIL_* style."""

from __future__ import annotations

import io

import pytest

import mailout
from mailout.backends.console import EmailBackend as ConsoleBackend
from mailout.backends.locmem import EmailBackend as LocmemBackend
from mailout.exceptions import InvalidMailer, MailerDoesNotExist

LOCMEM = "mailout.backends.locmem.EmailBackend"
CONSOLE = "mailout.backends.console.EmailBackend"
SMTP = "mailout.backends.smtp.EmailBackend"


def test_without_mailers_default_comes_from_email_backend() -> None:
    mailout.configure({"EMAIL_BACKEND": LOCMEM})
    default = mailout.mailers["default"]
    assert isinstance(default, LocmemBackend)
    assert default.alias is None  # built from the EMAIL_* settings, as Django does
    assert isinstance(mailout.mailers.default, LocmemBackend)
    assert not mailout.mailers.is_configured
    # MAILERS itself is empty: Django 6.1's mailers list and hold what MAILERS defines.
    assert list(mailout.mailers) == []
    assert "default" not in mailout.mailers
    with pytest.raises(MailerDoesNotExist, match="The mailer 'bulk' is not configured"):
        mailout.mailers["bulk"]
    assert mailout.mailers.get("bulk") is None
    assert mailout.mailers.get("bulk", "fallback") == "fallback"


def test_empty_mailers_means_no_mailers() -> None:
    mailout.configure({"MAILERS": {}, "EMAIL_BACKEND": LOCMEM})
    assert mailout.mailers.is_configured
    with pytest.raises(MailerDoesNotExist, match="The mailer 'default' is not configured"):
        _ = mailout.mailers.default
    with pytest.raises(MailerDoesNotExist):
        mailout.send_mail("s", "b", "f@example.com", ["t@example.com"])
    assert mailout.outbox == []


def test_mailers_alias_and_options() -> None:
    stream = io.StringIO()
    mailout.configure(
        {
            "MAILERS": {
                "default": {"BACKEND": LOCMEM},
                "debug": {"BACKEND": CONSOLE, "OPTIONS": {"stream": stream}},
            }
        }
    )
    debug = mailout.mailers["debug"]
    assert isinstance(debug, ConsoleBackend)
    assert debug.stream is stream
    assert debug.alias == "debug"
    assert mailout.mailers["debug"] is not debug  # a new backend per lookup
    assert "debug" in mailout.mailers
    assert "nope" not in mailout.mailers
    assert sorted(mailout.mailers) == ["debug", "default"]


def test_using_on_every_sending_function() -> None:
    stream = io.StringIO()
    mailout.configure(
        {
            "MAILERS": {
                "default": {"BACKEND": LOCMEM},
                "debug": {"BACKEND": CONSOLE, "OPTIONS": {"stream": stream}},
            },
            "ADMINS": ["admin@example.com"],
            "MANAGERS": ["manager@example.com"],
        }
    )
    assert mailout.send_mail("s1", "b", "f@example.com", ["t@example.com"], using="debug") == 1
    datatuple = [("s2", "b", "f@example.com", ["t@example.com"])]
    assert mailout.send_mass_mail(datatuple, using="debug") == 1
    assert mailout.mail_admins("s3", "b", using="debug") == 1
    assert mailout.mail_managers("s4", "b", using="debug") == 1
    message = mailout.EmailMessage("s5", "b", "f@example.com", ["t@example.com"])
    assert message.send(using="debug") == 1
    assert mailout.outbox == []
    for subject in ("s1", "s2", "[Django] s3", "[Django] s4", "s5"):
        assert f"Subject: {subject}\n" in stream.getvalue()
    assert mailout.send_mail("s6", "b", "f@example.com", ["t@example.com"]) == 1
    assert [m.subject for m in mailout.outbox] == ["s6"]  # default mailer, no using=


def test_using_unknown_alias() -> None:
    mailout.configure({"MAILERS": {"default": {"BACKEND": LOCMEM}}})
    with pytest.raises(MailerDoesNotExist, match=r"'nope'.*'default'"):
        mailout.send_mail("s", "b", "f@example.com", ["t@example.com"], using="nope")
    assert mailout.outbox == []


def test_using_with_connection_is_refused() -> None:
    mailout.configure({"MAILERS": {"default": {"BACKEND": LOCMEM}}})
    with pytest.raises(TypeError, match="'connection' is not compatible with 'using'"):
        mailout.send_mail(
            "s",
            "b",
            "f@example.com",
            ["t@example.com"],
            connection=LocmemBackend(),
            using="default",
        )
    assert mailout.outbox == []


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("not a dict", "expected a mapping"),
        ({"OPTIONS": {}}, "OPTIONS must define 'host'"),  # BACKEND defaults to smtp
        ({"BACKEND": LOCMEM, "OPTOINS": {}}, "unknown keys"),
        ({"BACKEND": LOCMEM, "OPTIONS": []}, "OPTIONS"),
        ({"BACKEND": "no.such.Backend"}, "Could not find BACKEND 'no.such.Backend'"),
        ({"BACKEND": SMTP, "OPTIONS": {"hots": "x"}}, "Unknown options 'hots'"),
        ({"BACKEND": SMTP, "OPTIONS": {"host": "x", "alias": "y"}}, "must not define 'alias'"),
        ({"BACKEND": SMTP, "OPTIONS": {"host": "x", "use_ssl": 1, "use_tls": 1}}, "incompat"),
    ],
)
def test_invalid_mailer(entry: object, problem: str) -> None:
    mailout.configure({"MAILERS": {"default": entry}})
    with pytest.raises(InvalidMailer, match=problem) as info:
        mailout.mailers["default"]
    assert "MAILERS['default']" in str(info.value)


def test_get_connection_uses_default_mailer_when_mailers_set() -> None:
    mailout.configure({"MAILERS": {"default": {"BACKEND": LOCMEM}}, "EMAIL_BACKEND": CONSOLE})
    assert isinstance(mailout.get_connection(), LocmemBackend)
    assert mailout.get_connection().alias == "default"
    with pytest.raises(RuntimeError, match=r"get_connection\(backend, ...\) is not supported"):
        mailout.get_connection(CONSOLE)
