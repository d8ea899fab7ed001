"""The coroutine twins of the sending API, over a real server, and that they never block a loop.

pytest-asyncio is not installed: each test runs its coroutine with ``asyncio.run``.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import io
import itertools
import threading
import time
from collections.abc import Iterator
from email.message import EmailMessage as StdMessage
from pathlib import Path
from typing import Any

import pytest

import mailout
from mailout.backends.smtp import EmailBackend
from mailout.exceptions import SenderRefusedError, SMTPConnectError
from mailout.smtp import SendResult
from tests.servers.faulty import FaultyServer, Rule, Script

SMTP = "mailout.backends.smtp.EmailBackend"
LOCMEM = "mailout.backends.locmem.EmailBackend"


@pytest.fixture
def srv() -> Iterator[FaultyServer]:
    with FaultyServer() as server:
        yield server


@pytest.fixture
def smtp_settings(srv: FaultyServer) -> FaultyServer:
    mailout.configure(
        {
            "EMAIL_BACKEND": SMTP,
            "EMAIL_HOST": srv.host,
            "EMAIL_PORT": srv.port,
            "EMAIL_TIMEOUT": 5.0,
            "ADMINS": ["admin1@example.com", "admin2@example.com"],
            "MANAGERS": ["manager@example.com"],
            "SERVER_EMAIL": "server@example.com",
            "EMAIL_SUBJECT_PREFIX": "[site] ",
        }
    )
    return srv


def parsed(srv: FaultyServer) -> list[StdMessage]:
    return [
        email.message_from_bytes(t.content, policy=email.policy.default) for t in srv.transactions
    ]


def text_body(message: StdMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


# -- the smtp backend over a real server ---------------------------------------------------


def test_asend_mail(smtp_settings: FaultyServer) -> None:
    sent = asyncio.run(
        mailout.asend_mail(
            "Hello",
            "plain body",
            "from@example.com",
            ["to@example.com"],
            html_message="<p>html body</p>",
        )
    )
    assert sent == 1
    [transaction] = smtp_settings.transactions
    assert transaction.sender == "from@example.com"
    assert transaction.recipients == ("to@example.com",)
    [message] = parsed(smtp_settings)
    assert message["Subject"] == "Hello"
    assert text_body(message).strip() == "plain body"
    html = message.get_body(("html",))
    assert html is not None
    assert "<p>html body</p>" in str(html.get_content())


def test_asend_mass_mail(smtp_settings: FaultyServer) -> None:
    datatuple = [(f"s{i}", f"b{i}", "from@example.com", [f"t{i}@example.com"]) for i in range(5)]
    assert asyncio.run(mailout.asend_mass_mail(datatuple)) == 5
    assert [t.recipients for t in smtp_settings.transactions] == [
        (f"t{i}@example.com",) for i in range(5)
    ]
    assert smtp_settings.connections == 1  # one connection for the lot, as in Django


@pytest.mark.parametrize(
    ("function", "recipients"),
    [
        (mailout.amail_admins, ("admin1@example.com", "admin2@example.com")),
        (mailout.amail_managers, ("manager@example.com",)),
    ],
)
def test_amail_admins_and_managers(
    smtp_settings: FaultyServer, function: Any, recipients: tuple[str, ...]
) -> None:
    assert asyncio.run(function("Alert", "something broke")) == 1
    [transaction] = smtp_settings.transactions
    assert transaction.sender == "server@example.com"
    assert transaction.recipients == recipients
    [message] = parsed(smtp_settings)
    assert message["Subject"] == "[site] Alert"
    assert text_body(message).strip() == "something broke"


@pytest.mark.parametrize("function", [mailout.amail_admins, mailout.amail_managers])
def test_amail_admins_without_recipients_sends_nothing(srv: FaultyServer, function: Any) -> None:
    mailout.configure({"EMAIL_HOST": srv.host, "EMAIL_PORT": srv.port})
    assert asyncio.run(function("Alert", "nobody to tell")) == 0
    assert srv.connections == 0


def test_message_asend(smtp_settings: FaultyServer) -> None:
    message = mailout.EmailMessage(
        "s", "b", "from@example.com", ["to@example.com"], bcc=["hidden@example.com"]
    )
    assert asyncio.run(message.asend()) == 1
    [transaction] = smtp_settings.transactions
    assert transaction.recipients == ("to@example.com", "hidden@example.com")
    assert b"hidden@example.com" not in transaction.content  # Bcc never in the headers


def test_message_asend_without_recipients_is_zero(srv: FaultyServer) -> None:
    message = mailout.EmailMessage("s", "b", "from@example.com", [])
    assert asyncio.run(message.asend()) == 0
    assert srv.connections == 0


def test_async_with_backend_reuses_one_connection(srv: FaultyServer) -> None:
    async def main() -> list[int]:
        counts = []
        async with mailout.get_connection(
            SMTP, host=srv.host, port=srv.port, timeout=5.0
        ) as connection:
            for batch in range(3):
                counts.append(
                    await connection.asend_messages(
                        [
                            mailout.EmailMessage(
                                f"s{batch}-{i}", "b", "f@example.com", [f"t{batch}{i}@example.com"]
                            )
                            for i in range(2)
                        ]
                    )
                )
        return counts

    assert asyncio.run(main()) == [2, 2, 2]
    assert srv.connections == 1
    assert len(srv.transactions) == 6


def test_closed_async_backend_opens_and_closes_around_a_call(srv: FaultyServer) -> None:
    backend = EmailBackend(host=srv.host, port=srv.port, timeout=5.0)

    async def main() -> None:
        for _ in range(2):
            message = mailout.EmailMessage("s", "b", "f@example.com", ["t@example.com"])
            assert await backend.asend_messages([message]) == 1
            assert backend.aconnection is None

    asyncio.run(main())
    assert srv.connections == 2


def test_async_close_says_quit(srv: FaultyServer) -> None:
    # RFC 5321 §4.1.1.10: the session ends with QUIT, the connection is not just dropped.
    backend = EmailBackend(host=srv.host, port=srv.port, timeout=5.0)
    message = mailout.EmailMessage("s", "b", "f@example.com", ["t@example.com"])
    assert asyncio.run(backend.asend_messages([message])) == 1
    deadline = time.monotonic() + 1
    while "QUIT" not in srv.commands and time.monotonic() < deadline:
        time.sleep(0.01)
    assert srv.commands[-1] == "QUIT"


def test_async_protocol_error_does_not_break_the_next_batch() -> None:
    # As for the sync pool: a garbled reply kills the connection of the first batch (50
    # messages); the second batch must get a new connection, not the dead client.
    with FaultyServer(Script(rules=[Rule("MAIL", raw=b"garbage\r\n", times=1)])) as server:
        backend = EmailBackend(
            host=server.host, port=server.port, timeout=5.0, pool_size=1, fail_silently=True
        )
        messages = [
            mailout.EmailMessage(f"s{i}", "b", "f@example.com", [f"t{i}@example.com"])
            for i in range(60)
        ]
        assert asyncio.run(backend.asend_messages(messages)) == 10
        assert len(backend.results) == 60
        assert all(isinstance(r, SendResult) for r in backend.results[50:])
        assert server.connections == 2


def test_async_pool_spreads_200_messages_over_pool_size_connections() -> None:
    with FaultyServer(Script(delay=0.02)) as slow:
        backend = EmailBackend(host=slow.host, port=slow.port, timeout=5.0, pool_size=4)
        messages = [
            mailout.EmailMessage(f"s{i}", "b", "f@example.com", [f"t{i}@example.com"])
            for i in range(200)
        ]
        assert asyncio.run(backend.asend_messages(messages)) == 200
        assert slow.connections == 4
        assert sorted(r for t in slow.transactions for r in t.recipients) == sorted(
            f"t{i}@example.com" for i in range(200)
        )
        assert all(isinstance(r, SendResult) for r in backend.results)


def test_async_errors_and_fail_silently(srv: FaultyServer) -> None:
    with FaultyServer(Script(rules=[Rule(r"MAIL FROM:<bad@", reply="550 5.7.1 no")])) as server:
        backend = EmailBackend(host=server.host, port=server.port, timeout=5.0)
        messages = [
            mailout.EmailMessage("s", "b", sender, ["t@example.com"])
            for sender in ("ok@example.com", "bad@example.com", "ok@example.com")
        ]
        with pytest.raises(SenderRefusedError):
            asyncio.run(backend.asend_messages(messages))
        assert len(server.transactions) == 2
        backend.fail_silently = True
        assert asyncio.run(backend.asend_messages(messages)) == 2


def test_async_connection_refused() -> None:
    with FaultyServer() as server:
        host, port = server.host, server.port
    backend = EmailBackend(host=host, port=port, timeout=2.0)  # nobody listens any more
    with pytest.raises(SMTPConnectError):
        asyncio.run(
            backend.asend_messages([mailout.EmailMessage("s", "b", "f@x.com", ["t@x.com"])])
        )
    backend.fail_silently = True
    message = mailout.EmailMessage("s", "b", "f@x.com", ["t@x.com"])
    assert asyncio.run(backend.asend_messages([message])) == 0


# -- using= ---------------------------------------------------------------------------------


def test_using_selects_a_mailer_for_every_async_function(srv: FaultyServer) -> None:
    mailout.configure(
        {
            "MAILERS": {
                "default": {"BACKEND": LOCMEM},
                "bulk": {
                    "BACKEND": SMTP,
                    "OPTIONS": {"host": srv.host, "port": srv.port, "timeout": 5.0},
                },
            },
            "ADMINS": ["admin@example.com"],
            "MANAGERS": ["manager@example.com"],
        }
    )

    async def main() -> list[int]:
        message = mailout.EmailMessage("m", "b", "f@example.com", ["msg@example.com"])
        return [
            await mailout.asend_mail("a", "b", "f@example.com", ["mail@example.com"], using="bulk"),
            await mailout.asend_mass_mail(
                [("c", "d", "f@example.com", ["mass@example.com"])], using="bulk"
            ),
            await mailout.amail_admins("e", "f", using="bulk"),
            await mailout.amail_managers("g", "h", using="bulk"),
            await message.asend(using="bulk"),
            await mailout.asend_mail("x", "y", "f@example.com", ["default@example.com"]),
        ]

    assert asyncio.run(main()) == [1] * 6
    assert [t.recipients for t in srv.transactions] == [
        ("mail@example.com",),
        ("mass@example.com",),
        ("admin@example.com",),
        ("manager@example.com",),
        ("msg@example.com",),
    ]
    [local] = mailout.outbox  # without using=, the default mailer (locmem) got it
    assert local.to == ["default@example.com"]


def test_using_an_unknown_mailer_fails() -> None:
    mailout.configure({"MAILERS": {"default": {"BACKEND": LOCMEM}}})
    with pytest.raises(mailout.MailerDoesNotExist):
        asyncio.run(mailout.asend_mail("s", "b", "f@example.com", ["t@example.com"], using="nope"))


# -- the backends without native async run in a worker thread -------------------------------


def test_locmem_async() -> None:
    async def main() -> int:
        async with mailout.get_connection(LOCMEM) as connection:
            messages = [
                mailout.EmailMessage(f"s{i}", "b", "f@example.com", ["t@example.com"])
                for i in range(3)
            ]
            return await connection.asend_messages(messages)

    assert asyncio.run(main()) == 3
    assert [m.subject for m in mailout.outbox] == ["s0", "s1", "s2"]


def test_locmem_asend_mail_through_settings() -> None:
    mailout.configure({"EMAIL_BACKEND": LOCMEM})
    assert asyncio.run(mailout.asend_mail("s", "b", "f@example.com", ["t@example.com"])) == 1
    assert len(mailout.outbox) == 1


class RecordingStream(io.StringIO):
    """A console stream that notes the thread each write runs in."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: set[int] = set()

    def write(self, s: str) -> int:
        self.threads.add(threading.get_ident())
        return super().write(s)


def test_console_async_writes_off_the_event_loop_thread() -> None:
    stream = RecordingStream()

    async def main() -> tuple[int, int]:
        async with mailout.get_connection(
            "mailout.backends.console.EmailBackend", stream=stream
        ) as connection:
            sent = await connection.asend_messages(
                [mailout.EmailMessage("console subject", "console body", "f@x.com", ["t@x.com"])]
            )
        return sent, threading.get_ident()

    sent, loop_thread = asyncio.run(main())
    assert sent == 1
    assert "console subject" in stream.getvalue()
    assert "console body" in stream.getvalue()
    assert stream.threads
    assert loop_thread not in stream.threads


def test_filebased_async(tmp_path: Path) -> None:
    async def main() -> int:
        async with mailout.get_connection(
            "mailout.backends.filebased.EmailBackend", file_path=tmp_path
        ) as connection:
            return await connection.asend_messages(
                [mailout.EmailMessage("file subject", "file body", "f@x.com", ["t@x.com"])]
            )

    assert asyncio.run(main()) == 1
    [written] = list(tmp_path.iterdir())
    content = written.read_text()
    assert "file subject" in content
    assert "file body" in content


# -- the event loop is never blocked ----------------------------------------------------------


LOOP_CPU: list[float] = []  # the loop thread's CPU time at each tick of the last run


async def send_while_ticking(
    backend: EmailBackend, messages: list[mailout.EmailMessage], tick: float
) -> tuple[int, list[float], float]:
    """Send with a task ticking every `tick` seconds; return the count, tick times, duration."""
    ticks: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        while not done.is_set():
            ticks.append(time.monotonic())
            LOOP_CPU.append(time.thread_time())
            await asyncio.sleep(tick)

    LOOP_CPU.clear()
    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)  # let the ticker start
    start = time.monotonic()
    sent = await backend.asend_messages(messages)
    elapsed = time.monotonic() - start
    done.set()
    await task
    return sent, ticks, elapsed


def test_waiting_for_the_server_does_not_block_the_event_loop() -> None:
    """50 messages to a server that waits 0.1 s before every batch of replies, with a task
    ticking every 10 ms. Greeting, EHLO and the burst of transactions are three waits: 0.3 s
    in which the loop must keep ticking. A driver blocking on its socket would let ~1 tick."""
    tick = 0.01
    with FaultyServer(Script(delay=0.1)) as slow:
        backend = EmailBackend(host=slow.host, port=slow.port, timeout=5.0)
        messages = [
            mailout.EmailMessage(f"s{i}", "b", "f@example.com", [f"t{i}@example.com"])
            for i in range(50)
        ]
        sent, ticks, elapsed = asyncio.run(send_while_ticking(backend, messages, tick))
        assert sent == 50
        assert len(slow.transactions) == 50
    assert elapsed >= 0.3
    # Half the ticks that fit in the three waits: room for a loaded machine.
    assert len(ticks) >= 0.3 / tick / 2, f"{len(ticks)} ticks in {elapsed:.3f} s"


class _StdlibMessage(mailout.EmailMessage):
    """Serialised by the standard library (an overridden message()): ~0.5 ms of CPU each."""

    def message(self, *, policy: email.policy.Policy = email.policy.default) -> StdMessage:
        return super().message(policy=policy)


def test_preparing_many_messages_does_not_block_the_event_loop() -> None:
    """500 messages through the standard library's serialiser cost ~0.25 s of CPU: done on
    the event loop before the first byte is sent, they freeze it for all of that."""
    tick = 0.01
    with FaultyServer() as srv:
        backend = EmailBackend(host=srv.host, port=srv.port, timeout=5.0)
        messages = [
            _StdlibMessage(f"s{i}", "b" * 200, "f@example.com", [f"t{i}@example.com"])
            for i in range(500)
        ]
        sent, _, _ = asyncio.run(send_while_ticking(backend, messages, tick))
        assert sent == 500
    # Measured in the loop thread's own CPU time between two ticks, not wall time (a loaded
    # machine stretches wall time however the work is split): serialising on the loop puts
    # ~0.25 s of CPU between two ticks; done in threads, the loop thread spends a few
    # milliseconds between them.
    gaps = [b - a for a, b in itertools.pairwise(LOOP_CPU)]
    assert max(gaps) < 0.05, f"the loop thread ran {max(gaps) * 1000:.1f} ms between two ticks"
