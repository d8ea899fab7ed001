"""mailout's pytest fixtures in a Django project: ``mailoutbox`` and ``mail_catcher`` cover what
Django's mail API sends as well as mailout's, in both configuration styles."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.core import mail

import mailout
from mailout.testing import MailCatcher
from tests.django.helpers import HAS_MAILERS, mail_settings, quiet_overrides


@pytest.fixture
def unreachable(style: str) -> Iterator[str]:
    """The project's mail pointed at a port where nothing listens: only a fixture can catch it."""
    with mail_settings(style, "127.0.0.1", 9):
        yield style


def test_mailoutbox_holds_djangos_mail_and_mailouts(
    unreachable: str, mailoutbox: list[Any]
) -> None:
    assert mail.send_mail("From Django", "Body.\n", None, ["ana@example.com"]) == 1
    assert mailout.send_mail("From mailout", "Body.\n", None, ["bo@example.com"]) == 1
    assert mailoutbox is mail.outbox
    assert mailoutbox is mailout.outbox
    assert [m.subject for m in mailoutbox] == ["From Django", "From mailout"]
    assert mailoutbox[0].to == ["ana@example.com"]
    if HAS_MAILERS:
        assert mailoutbox[0].sent_using == ("default" if unreachable == "mailers" else None)


def test_mailoutbox_is_fresh(unreachable: str, mailoutbox: list[Any]) -> None:
    assert mailoutbox == []


def test_mail_catcher_catches_djangos_mail(unreachable: str, mail_catcher: MailCatcher) -> None:
    assert mail.send_mail("From Django", "Body.\n", None, ["ana@example.com"]) == 1
    assert mailout.send_mail("From mailout", "Body.\n", None, ["bo@example.com"]) == 1
    [django_message] = mail_catcher.wait_for(to="ana@example.com")
    assert django_message["Subject"] == "From Django"
    assert django_message["From"] == "Example Shop <shop@example.com>"
    assert [m["Subject"] for m in mail_catcher.wait_for(2)] == ["From Django", "From mailout"]


def test_mail_catcher_shows_the_staging_redirect(
    unreachable: str, mail_catcher: MailCatcher
) -> None:
    with quiet_overrides(MAILOUT_REDIRECT_TO=["qa@example.com"]):
        mail.send_mail("Redirected", "Body.\n", None, ["customer@example.com"])
    [message] = mail_catcher.wait_for(to="qa@example.com")
    assert message["X-Mailout-Original-To"] == "customer@example.com"
    assert mail_catcher.messages(to="customer@example.com") == []
