"""Settings: precedence, call-time reads, EMAIL_URL, and errors that name the setting."""

from __future__ import annotations

import types
from pathlib import Path

import pytest

import mailout
from mailout.conf import DEFAULTS, parse_email_url, settings
from mailout.exceptions import ImproperlyConfigured


def test_defaults_are_djangos_except_timeout() -> None:
    assert settings.EMAIL_BACKEND == "mailout.backends.smtp.EmailBackend"
    assert settings.EMAIL_HOST == "localhost"
    assert settings.EMAIL_PORT == 25
    assert settings.EMAIL_SUBJECT_PREFIX == "[Django] "
    assert settings.DEFAULT_FROM_EMAIL == "webmaster@localhost"
    assert settings.SERVER_EMAIL == "root@localhost"
    assert settings.DEFAULT_CHARSET == "utf-8"
    assert settings.ADMINS == []
    assert settings.MANAGERS == []
    assert settings.MAILERS == {}
    assert settings.EMAIL_TIMEOUT == 30.0  # Django's None would hang forever


def test_mapping_source_read_at_call_time() -> None:
    config = {"EMAIL_HOST": "mail.example.com"}
    mailout.configure(config)
    assert settings.EMAIL_HOST == "mail.example.com"
    config["EMAIL_HOST"] = "other.example.com"
    assert settings.EMAIL_HOST == "other.example.com"
    assert settings.EMAIL_PORT == 25  # missing key: not set


def test_attribute_source_like_django_settings() -> None:
    source = types.SimpleNamespace(EMAIL_PORT=2525, DEFAULT_FROM_EMAIL="app@example.com")
    mailout.configure(source)
    assert settings.EMAIL_PORT == 2525
    source.EMAIL_PORT = 587
    assert settings.EMAIL_PORT == 587
    assert mailout.EmailMessage("s", "b", to=["a@example.com"]).from_email == "app@example.com"


def test_source_beats_environment_beats_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMAIL_HOST", "env.example.com")
    monkeypatch.setenv("EMAIL_PORT", "2525")
    assert settings.EMAIL_HOST == "env.example.com"
    mailout.configure({"EMAIL_HOST": "source.example.com"})
    assert settings.EMAIL_HOST == "source.example.com"
    assert settings.EMAIL_PORT == 2525  # the source does not set it: environment applies


def test_environment_types(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMAIL_USE_TLS", "yes")
    monkeypatch.setenv("EMAIL_TIMEOUT", "2.5")
    monkeypatch.setenv("ADMINS", "a@example.com, b@example.com")
    monkeypatch.setenv("MAILERS", '{"default": {"BACKEND": "mailout.backends.dummy.EmailBackend"}}')
    assert settings.EMAIL_USE_TLS is True
    assert settings.EMAIL_TIMEOUT == 2.5
    assert settings.ADMINS == ["a@example.com", "b@example.com"]
    assert settings.MAILERS["default"]["BACKEND"].endswith("dummy.EmailBackend")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "smtp://user:p%40ss@mail.example.com:587?tls=starttls",
            {
                "EMAIL_HOST": "mail.example.com",
                "EMAIL_PORT": 587,
                "EMAIL_HOST_USER": "user",
                "EMAIL_HOST_PASSWORD": "p@ss",
                "EMAIL_USE_TLS": True,
                "EMAIL_USE_SSL": False,
            },
        ),
        ("smtps://mail.example.com", {"EMAIL_PORT": 465, "EMAIL_USE_SSL": True}),
        ("smtp://mail.example.com", {"EMAIL_PORT": 25, "EMAIL_USE_TLS": False}),
        ("console:", {"EMAIL_BACKEND": "mailout.backends.console.EmailBackend"}),
        ("locmem:", {"EMAIL_BACKEND": "mailout.backends.locmem.EmailBackend"}),
        ("dummy:", {"EMAIL_BACKEND": "mailout.backends.dummy.EmailBackend"}),
        ("file:///tmp/mail", {"EMAIL_FILE_PATH": "/tmp/mail"}),
        ("smtp://h?timeout=5", {"EMAIL_TIMEOUT": "5"}),
    ],
)
def test_email_url(url: str, expected: dict[str, object]) -> None:
    parsed = parse_email_url(url)
    for name, value in expected.items():
        assert parsed[name] == value


def test_email_url_from_environment_and_explicit_settings_win(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EMAIL_URL", "smtps://u:pw@mail.example.com:2465")
    assert (settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_USE_SSL) == (
        "mail.example.com",
        2465,
        True,
    )
    monkeypatch.setenv("EMAIL_PORT", "465")
    assert settings.EMAIL_PORT == 465


@pytest.mark.parametrize(
    ("source", "setting"),
    [
        ({"EMAIL_PORT": "abc"}, "EMAIL_PORT"),
        ({"EMAIL_PORT": 70000}, "EMAIL_PORT"),
        ({"EMAIL_TIMEOUT": "soon"}, "EMAIL_TIMEOUT"),
        ({"EMAIL_TIMEOUT": -1}, "EMAIL_TIMEOUT"),
        ({"EMAIL_USE_TLS": "maybe"}, "EMAIL_USE_TLS"),
        ({"ADMINS": "a@example.com"}, "ADMINS"),
        ({"MANAGERS": [("only-a-name",)]}, "MANAGERS"),
        ({"EMAIL_HOST": 42}, "EMAIL_HOST"),
    ],
)
def test_bad_values_name_the_setting(source: dict[str, object], setting: str) -> None:
    mailout.configure(source)
    with pytest.raises(ImproperlyConfigured, match=setting):
        getattr(settings, setting)


def test_bad_email_url() -> None:
    with pytest.raises(ImproperlyConfigured, match="EMAIL_URL: unknown scheme"):
        parse_email_url("gopher://x")
    with pytest.raises(ImproperlyConfigured, match="EMAIL_URL") as info:
        parse_email_url("smtp://u:secretpw@h:notaport")
    assert "secretpw" not in str(info.value)


def test_unknown_backend_names_setting() -> None:
    mailout.configure({"EMAIL_BACKEND": "mailout.backends.nope.EmailBackend"})
    with pytest.raises(ImproperlyConfigured, match="EMAIL_BACKEND"):
        mailout.get_connection()


def test_tls_and_ssl_together_refused() -> None:
    mailout.configure({"EMAIL_USE_TLS": True, "EMAIL_USE_SSL": True})
    with pytest.raises(ImproperlyConfigured, match="EMAIL_USE_TLS/EMAIL_USE_SSL"):
        mailout.get_connection()


def test_as_dict_masks_password() -> None:
    mailout.configure({"EMAIL_HOST_PASSWORD": "hunter2"})
    values = settings.as_dict()
    assert values["EMAIL_HOST_PASSWORD"] == "********"
    assert set(values) == set(DEFAULTS)
    assert "hunter2" not in repr(settings)


@pytest.mark.parametrize("name", ["smtp", "console", "filebased", "locmem", "dummy"])
def test_djangos_backend_paths_mean_mailouts_backends(name: str, tmp_path: Path) -> None:
    """A Django settings module handed to configure() names Django's backends."""
    mailout.configure(
        {
            "EMAIL_BACKEND": f"django.core.mail.backends.{name}.EmailBackend",
            "EMAIL_FILE_PATH": tmp_path,
        }
    )
    backend = mailout.get_connection()
    assert type(backend).__module__ == f"mailout.backends.{name}"


@pytest.mark.parametrize(
    "url",
    [
        "smtp://u:p@h:2525?tls=starttls&timeout=5",
        "smtps://u:p@h",
        "submission://h",
        "file:///tmp/mail",
        "console:",
        "locmem:",
        "dummy:?timeout=1",
    ],
)
def test_email_url_sets_only_the_settings_raw_looks_it_up_for(url: str) -> None:
    # raw() skips the EMAIL_URL lookup for any other setting (it is read for every message).
    from mailout import conf

    assert set(parse_email_url(url)) <= conf._FROM_URL
