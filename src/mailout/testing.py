"""pytest fixtures for code that sends mail with mailout (a pytest plugin, loaded automatically).

``mailoutbox``: switches to the locmem backend and yields ``mailout.outbox``, a fresh list::

    def test_welcome(mailoutbox):
        signup("ana@example.com")
        assert mailoutbox[0].subject == "Welcome"

``mail_catcher``: a real SMTP server (the ``mailout serve`` catcher, on free ports, in a
background thread) with mailout's settings pointed at it, so the message really travels over
SMTP; needs the ``server`` extra::

    def test_welcome_over_smtp(mail_catcher):
        signup("ana@example.com")
        [message] = mail_catcher.wait_for(to="ana@example.com")
        assert message["Subject"] == "Welcome"
        print(mail_catcher.http_url)  # the web inbox, when its libraries are installed

In a Django project (the test process has Django's settings configured), both fixtures cover
Django's mail API as well: ``mailoutbox`` is also ``django.core.mail.outbox``, with Django's
locmem backend in ``EMAIL_BACKEND`` (or every ``MAILERS`` entry), and ``mail_catcher`` points
Django's settings at the catcher through mailout.django's backend (mailout.django.testing).
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import os
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from email.message import EmailMessage as StdMessage
from typing import TYPE_CHECKING, Any

import pytest

import mailout
from mailout import conf

if TYPE_CHECKING:
    from mailout.catcher.server import Catcher
    from mailout.catcher.store import MessageStore, StoreEvent

__all__ = ["MailCatcher", "mail_catcher", "mailoutbox"]


class MailCatcher:
    """What the ``mail_catcher`` fixture gives: the running catcher and helpers to read its mail.

    Messages come oldest first. ``to`` keeps those with that envelope recipient (Cc and Bcc
    included; the domain compared case-insensitively); ``subject`` keeps those whose decoded
    subject contains it, case-insensitively.
    """

    def __init__(self, catcher: Catcher) -> None:
        self.catcher = catcher
        self.store: MessageStore = catcher.store
        self._changed = threading.Condition()
        self._unsubscribe = self.store.subscribe(self._notify)

    @property
    def smtp_port(self) -> int:
        return self.catcher.smtp_port

    @property
    def smtp_host(self) -> str:
        assert self.catcher.smtp_address is not None
        return self.catcher.smtp_address[0]

    @property
    def http_url(self) -> str | None:
        """The web inbox's URL, or None when starlette/uvicorn are not installed."""
        return self.catcher.http_url

    def raw(self, to: str | None = None, subject: str | None = None) -> list[bytes]:
        """The stored bytes of each matching message (as received, plus a Received: line)."""
        return [raw for _, raw in self._matching(to, subject)]

    def messages(self, to: str | None = None, subject: str | None = None) -> list[StdMessage]:
        """Each matching message, parsed (policy.default, ``\\n`` line ends, so bodies compare)."""
        return [_parse(raw) for raw in self.raw(to, subject)]

    def clear(self) -> int:
        return self.store.clear()

    def wait_for(
        self,
        count: int = 1,
        to: str | None = None,
        subject: str | None = None,
        timeout: float = 5,
    ) -> list[StdMessage]:
        """Wait until at least ``count`` messages match; return them all, or raise TimeoutError."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = self.raw(to, subject)
                if len(found) >= count:
                    return [_parse(raw) for raw in found]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"waited {timeout}s for {count} message(s)"
                        + (f" to {to}" if to else "")
                        + (f" with subject {subject!r}" if subject else "")
                        + f"; {len(found)} arrived"
                    )
                self._changed.wait(left)

    def close(self) -> None:
        self._unsubscribe()

    def _notify(self, event: StoreEvent) -> None:
        with self._changed:
            self._changed.notify_all()

    def _matching(self, to: str | None, subject: str | None) -> list[tuple[int, bytes]]:
        _, summaries = self.store.list(to=to, limit=1_000_000)
        wanted = subject.casefold() if subject is not None else None
        found = []
        for summary in reversed(summaries):  # oldest first
            if wanted is not None and wanted not in summary.subject.casefold():
                continue
            raw = self.store.raw(summary.id)
            if raw is not None:
                found.append((summary.id, raw))
        return found


def _parse(raw: bytes) -> StdMessage:
    message = email.message_from_bytes(raw.replace(b"\r\n", b"\n"), policy=email.policy.default)
    assert isinstance(message, StdMessage)
    return message


class _Layered:
    """Settings: ours first, then whatever was configured before (restored afterwards)."""

    def __init__(self, overrides: Mapping[str, object], base: object) -> None:
        self._overrides = dict(overrides)
        self._base = base

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if name in self._overrides:
            return self._overrides[name]
        base = self._base
        if isinstance(base, Mapping):
            if name in base:
                return base[name]
        elif base is not None and hasattr(base, name):
            return getattr(base, name)
        raise AttributeError(name)


def _django() -> Any:
    """mailout.django.testing when this process runs a Django project, else None.

    Django is never imported here: a project that uses it has imported its settings by now.
    """
    django_conf = sys.modules.get("django.conf")
    if django_conf is None:
        return None
    if not (django_conf.settings.configured or os.environ.get("DJANGO_SETTINGS_MODULE")):
        return None
    from mailout.django import testing

    return testing


@pytest.fixture
def mailoutbox() -> Iterator[list[mailout.EmailMessage]]:
    """``mailout.outbox``, emptied, with mail going to the locmem backend for this test."""
    django = _django()
    with contextlib.ExitStack() as stack:
        outbox: list[Any] = []
        if django is not None:
            stack.enter_context(django.locmem_outbox(outbox))  # Django's settings first
        previous_source, previous_outbox = conf._source, getattr(mailout, "outbox", None)
        conf.configure(
            _Layered({"EMAIL_BACKEND": "mailout.backends.locmem.EmailBackend"}, previous_source)
        )
        mailout.outbox = outbox
        try:
            yield mailout.outbox
        finally:
            conf.configure(previous_source)
            if previous_outbox is not None:
                mailout.outbox = previous_outbox


@pytest.fixture
def mail_catcher() -> Iterator[MailCatcher]:
    """A mail catcher on free loopback ports, with mailout's settings pointed at it."""
    try:
        from mailout.catcher.server import Catcher, web_available
    except ImportError as exc:  # pragma: no cover - the package is always there
        pytest.skip(str(exc))
    try:
        catcher = Catcher(smtp=("127.0.0.1", 0), http=("127.0.0.1", 0) if web_available() else None)
    except ImportError as exc:
        pytest.skip(str(exc))
    catcher.start_in_thread()
    assert catcher.smtp_address is not None
    helper = MailCatcher(catcher)
    django = _django()
    stack = contextlib.ExitStack()
    if django is not None:
        stack.enter_context(django.catcher_settings(*catcher.smtp_address))
    previous = conf._source
    conf.configure(
        _Layered(
            {
                "EMAIL_BACKEND": "mailout.backends.smtp.EmailBackend",
                "EMAIL_HOST": catcher.smtp_address[0],
                "EMAIL_PORT": catcher.smtp_address[1],
                "EMAIL_USE_TLS": False,
                "EMAIL_USE_SSL": False,
                "EMAIL_HOST_USER": "",
                "EMAIL_HOST_PASSWORD": "",
                "EMAIL_URL": "",
            },
            previous,
        )
    )
    try:
        yield helper
    finally:
        conf.configure(previous)
        stack.close()
        helper.close()
        catcher.stop_thread()
