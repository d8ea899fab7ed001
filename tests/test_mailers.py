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


def test_without_mailers_default_comes_from_email_backend() -> None:
    mailout.configure({"EMAIL_BACKEND": LOCMEM})
    assert isinstance(mailout.mailers["default"], LocmemBackend)
    assert list(mailout.mailers) == ["default"]
    with pytest.raises(MailerDoesNotExist, match="'bulk'"):
        mailout.mailers["bulk"]


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
    with pytest.raises(TypeError, match="not both"):
        mailout.send_mail(
            "s",
            "b",
            "f@example.com",
            ["t@example.com"],
            connection=mailout.get_connection(LOCMEM),
            using="default",
        )


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("not a dict", "expected a mapping"),
        ({"OPTIONS": {}}, "BACKEND is required"),
        ({"BACKEND": LOCMEM, "OPTOINS": {}}, "unknown keys"),
        ({"BACKEND": LOCMEM, "OPTIONS": []}, "OPTIONS"),
        ({"BACKEND": "no.such.Backend"}, "cannot import"),
        ({"BACKEND": "mailout.backends.smtp.EmailBackend", "OPTIONS": {"hots": "x"}}, "hots"),
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
    assert isinstance(mailout.get_connection(CONSOLE), ConsoleBackend)
