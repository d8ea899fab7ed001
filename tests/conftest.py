"""Shared fixtures: isolated settings, and a real aiosmtpd server on loopback that records mail."""

from __future__ import annotations

import email
import email.policy
import os
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage as StdMessage
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword
from hypothesis import settings

import mailout
from mailout import conf

# CI explores the same examples on every run (reproducible, no flaky red from a fresh random
# draw); a developer's runs stay random and keep a database of failures to find new cases.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

# Under CI nothing the suite needs may be missing: a skip (Postfix, Chromium, swaks, Django,
# PostgreSQL not installed or not running) fails the test, so a missing install step in
# .ci/run cannot hide behind a green run. A developer's machine still skips, with the reason.
UNDER_CI = bool(os.environ.get("CI"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if UNDER_CI and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped under CI, where every test must run: {reason}"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # Skips at collection (a module-level importorskip) never reach makereport above.
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    if UNDER_CI and skipped and reporter is not None:
        reporter.write_line(f"{len(skipped)} skipped under CI, where every test must run", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


USER, PASSWORD = "alice", "s3cret-pa55"


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test sees the developer's EMAIL_* environment, another test's configure() or outbox."""
    for name in list(os.environ):
        if name.startswith("EMAIL_") or name in conf.DEFAULTS:
            monkeypatch.delenv(name)
    conf.configure(None)
    mailout.outbox = []
    yield
    conf.configure(None)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    smtp_utf8: bool

    @property
    def message(self) -> StdMessage:
        # Parsed with "\n" line ends, as the other backends write them, so contents compare.
        data = self.data.replace(b"\r\n", b"\n")
        return email.message_from_bytes(data, policy=email.policy.default)  # type: ignore[return-value]


@dataclass
class SMTPServer:
    host: str
    port: int
    received: list[Received] = field(default_factory=list)
    connections: int = 0
    ca: trustme.CA | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def messages(self) -> list[StdMessage]:
        return [r.message for r in self.received]


class _Recorder:
    def __init__(self, server: SMTPServer) -> None:
        self.server = server

    async def handle_DATA(self, srv: Any, session: Any, envelope: Any) -> str:
        with self.server.lock:
            self.server.received.append(
                Received(
                    envelope.mail_from,
                    list(envelope.rcpt_tos),
                    bytes(envelope.original_content),
                    bool(envelope.smtp_utf8),
                )
            )
        return "250 2.0.0 OK"


def _authenticator(
    server: Any, session: Any, envelope: Any, mechanism: str, data: Any
) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
        USER.encode(),
        PASSWORD.encode(),
    )
    return AuthResult(success=ok, handled=False)


class _Controller(Controller):
    def __init__(self, server: SMTPServer, **kwargs: Any) -> None:
        self._record = server
        super().__init__(_Recorder(server), hostname=server.host, port=server.port, **kwargs)

    def factory(self) -> SMTP:
        with self._record.lock:
            self._record.connections += 1
        return super().factory()  # type: ignore[no-any-return]


def _start(server: SMTPServer, **kwargs: Any) -> _Controller:
    controller = _Controller(server, **kwargs)
    controller.start()
    with server.lock:
        server.connections = 0  # start() made one probe connection of its own
    return controller


@pytest.fixture
def smtp_server() -> Iterator[SMTPServer]:
    """A plain aiosmtpd server (no TLS, no AUTH) recording what it receives."""
    server = SMTPServer("127.0.0.1", free_port())
    controller = _start(server, enable_SMTPUTF8=True)
    yield server
    controller.stop()


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_smtp_server(ca: trustme.CA) -> Iterator[SMTPServer]:
    """aiosmtpd offering STARTTLS (certificate for 'localhost' from a test CA) and AUTH."""
    server = SMTPServer("127.0.0.1", free_port(), ca=ca)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    controller = _start(
        server,
        tls_context=context,
        require_starttls=True,
        authenticator=_authenticator,
        auth_require_tls=True,
        enable_SMTPUTF8=True,
    )
    yield server
    controller.stop()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Any) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)
