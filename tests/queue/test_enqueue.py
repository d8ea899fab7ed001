"""The queue backend and ``mailout.queue.enqueue``: what is stored, when, and with which options."""

from __future__ import annotations

import asyncio
import datetime
from pathlib import Path

import pytest

import mailout
from mailout.backends.queue import EmailBackend as QueueBackend
from mailout.exceptions import (
    BadHeaderError,
    ImproperlyConfigured,
    InvalidMessageError,
    MessageTypeError,
    StorageError,
)
from mailout.queue import Priority, Queue, State, enqueue
from mailout.queue.mailer import DEFAULT_MAILER
from mailout.queue.storage.sqlite import SQLiteStorage

QUEUE = "mailout.backends.queue.EmailBackend"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "queue.db"
    mailout.configure({"EMAIL_QUEUE_URL": f"sqlite:///{path}", "EMAIL_BACKEND": QUEUE})
    return path


def message(n: int = 0, **kwargs: object) -> mailout.EmailMessage:
    fields: dict[str, object] = {
        "subject": f"Subject {n}",
        "body": f"Body {n}",
        "to": [f"user{n}@example.com"],
        "from_email": "shop@example.com",
    }
    fields.update(kwargs)
    return mailout.EmailMessage(**fields)  # type: ignore[arg-type]


def stored(path: Path) -> list[tuple[str, bytes | None]]:
    with SQLiteStorage(path) as storage:
        return [
            (m.subject, storage.get(m.id).data)
            for m in sorted(storage.list(limit=10_000), key=lambda m: m.id)
        ]


def test_send_mail_is_committed_before_it_returns(db: Path) -> None:
    assert mailout.send_mail("Hello", "Body", "shop@example.com", ["ana@example.com"]) == 1
    # A new connection (as another process would) sees it, committed.
    [(subject, data)] = stored(db)
    assert subject == "Hello"
    assert data is not None
    assert b"\r\nSubject: Hello\r\n" in data


def test_the_stored_bytes_are_final(db: Path) -> None:
    backend = QueueBackend()
    backend.send_messages([message(1, headers={"Message-ID": "<fixed@example.com>"}), message(2)])
    with SQLiteStorage(db) as storage:
        first, second = sorted(storage.list(), key=lambda m: m.id)
        assert first.message_id == "<fixed@example.com>"
        data = storage.get(second.id).data
        assert data is not None
        assert f"Message-ID: {second.message_id}\r\n".encode() in data
        assert (first.sender, first.recipients, first.mailer) == (
            "shop@example.com",
            ("user1@example.com",),
            DEFAULT_MAILER,
        )


def test_bad_input_anywhere_stores_nothing(db: Path) -> None:
    batch = [message(1), message(2, subject="Bad\nBcc: victim@example.com"), message(3)]
    with pytest.raises(BadHeaderError):
        QueueBackend().send_messages(batch)
    with pytest.raises(Exception, match=r"(?i)invalid address|not a single email address"):
        QueueBackend().send_messages([message(1), message(2, to=["not an address"])])
    assert stored(db) == []


def test_big_batches_are_checked_first_then_rendered_in_chunks(db: Path) -> None:
    batch = [message(n) for n in range(2500)]
    batch[2400].subject = "late\r\nbad"
    with pytest.raises(BadHeaderError):
        QueueBackend().send_messages(batch)
    assert stored(db) == []
    batch[2400].subject = "fine"
    assert QueueBackend().send_messages(batch) == 2500
    assert len(stored(db)) == 2500


def test_messages_without_recipients_are_not_stored(db: Path) -> None:
    assert QueueBackend().send_messages([message(1, to=[]), message(2)]) == 1
    assert QueueBackend().send_messages([]) == 0
    assert [s for s, _ in stored(db)] == ["Subject 2"]


def test_asend_messages(db: Path) -> None:
    async def main() -> int:
        return await QueueBackend().asend_messages([message(1), message(2)])

    assert asyncio.run(main()) == 2
    assert len(stored(db)) == 2


def test_backend_options(tmp_path: Path) -> None:
    mailout.configure({"MAILERS": {"relay": {"BACKEND": "mailout.backends.smtp.EmailBackend"}}})
    url = f"sqlite:///{tmp_path / 'other.db'}"
    later = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
    backend = QueueBackend(url=url, mailer="relay", priority="high", not_before=later)
    assert backend.send_messages([message(1)]) == 1
    with Queue(url) as queue:
        [summary] = queue.list()
    assert (summary.mailer, summary.priority, summary.due_at) == (
        "relay",
        Priority.HIGH,
        later.timestamp(),
    )


def test_settings_choose_the_store_and_mailer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMAIL_QUEUE_URL", f"sqlite:///{tmp_path / 'env.db'}")
    monkeypatch.setenv("EMAIL_QUEUE_MAILER", "mailout.backends.console.EmailBackend")
    assert mailout.get_connection(QUEUE).send_messages([message(1)]) == 1
    with Queue() as queue:
        assert queue.list()[0].mailer == "mailout.backends.console.EmailBackend"


def test_a_mailers_entry_can_be_a_queue_in_front_of_another(tmp_path: Path) -> None:
    mailout.configure(
        {
            "EMAIL_QUEUE_URL": f"sqlite:///{tmp_path / 'q.db'}",
            "MAILERS": {
                "default": {"BACKEND": QUEUE, "OPTIONS": {"mailer": "smtp"}},
                "smtp": {
                    "BACKEND": "mailout.backends.smtp.EmailBackend",
                    "OPTIONS": {"host": "smtp.example.com"},
                },
            },
        }
    )
    assert mailout.send_mail("Hi", "Body", "a@example.com", ["b@example.com"]) == 1
    with Queue() as queue:
        assert queue.list()[0].mailer == "smtp"


@pytest.mark.parametrize(
    ("config", "mailer"),
    [
        ({}, QUEUE),
        ({"MAILERS": {"q": {"BACKEND": QUEUE}}}, "q"),
        ({"EMAIL_BACKEND": QUEUE}, "default"),
    ],
)
def test_a_queue_never_delivers_into_a_queue(
    tmp_path: Path, config: dict[str, object], mailer: str
) -> None:
    mailout.configure({"EMAIL_QUEUE_URL": f"sqlite:///{tmp_path / 'q.db'}", **config})
    with pytest.raises(ImproperlyConfigured, match="is a queue"):
        QueueBackend(mailer=mailer)
    mailout.configure(
        {
            "EMAIL_QUEUE_URL": f"sqlite:///{tmp_path / 'q.db'}",
            "EMAIL_QUEUE_MAILER": mailer,
            **config,
        }
    )
    with pytest.raises(ImproperlyConfigured, match=r"EMAIL_QUEUE_MAILER.*is a queue"):
        QueueBackend()


def test_an_unknown_mailer_fails_in_the_caller(db: Path) -> None:
    mailout.configure(
        {
            "EMAIL_QUEUE_URL": f"sqlite:///{db}",
            "MAILERS": {"smtp": {"BACKEND": "mailout.backends.smtp.EmailBackend"}},
        }
    )
    with pytest.raises(ImproperlyConfigured, match="mailer: 'bulk' is neither a MAILERS alias"):
        QueueBackend(mailer="bulk")
    with pytest.raises(ImproperlyConfigured, match="cannot import"):
        enqueue([message(1)], mailer="no.such.Backend")


def test_enqueue_options(db: Path) -> None:
    now = 1_800_000_000.0
    ids = enqueue(
        [message(1), message(2, to=[]), message(3)],
        priority="low",
        not_before=datetime.timedelta(minutes=5),
        key=["order-1", None, "order-3"],
        metadata={"order": 1, "tags": ["a"]},
        now=now,
    )
    assert ids[1] is None
    assert None not in (ids[0], ids[2])
    with Queue() as queue:
        detail = queue.show(ids[0])  # type: ignore[arg-type]
    assert (detail.summary.priority, detail.summary.due_at, detail.summary.key) == (
        Priority.LOW,
        now + 300,
        "order-1",
    )
    assert dict(detail.metadata) == {"order": 1, "tags": ["a"]}
    # The same key again: not stored twice, and counted as stored.
    assert enqueue([message(9)], key="order-1") == [ids[0]]
    assert len(stored(db)) == 2


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"priority": "urgent"}, InvalidMessageError),
        ({"key": "one key for two"}, MessageTypeError),
        ({"key": ["a"]}, MessageTypeError),
        ({"key": ["", None]}, MessageTypeError),
        ({"metadata": {"when": datetime.datetime.now()}}, MessageTypeError),
        ({"not_before": "tomorrow"}, MessageTypeError),
    ],
)
def test_bad_enqueue_options(db: Path, options: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        enqueue([message(1), message(2)], **options)  # type: ignore[arg-type]
    assert stored(db) == []


def test_smtputf8_and_8bit_are_part_of_the_stored_envelope(db: Path) -> None:
    [id_] = enqueue([message(1, to=["josé@example.com"], body="café")])
    with SQLiteStorage(db) as storage:
        [claimed] = storage.claim(worker="w", limit=1, lease=5, now=2e9)
    assert claimed.id == id_
    assert (claimed.smtputf8, claimed.eight_bit, claimed.recipients) == (
        True,
        True,
        ("josé@example.com",),
    )


def test_a_storage_error_is_raised_or_silenced(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'missing' / 'q.db'}"
    with pytest.raises(StorageError, match="missing"):
        QueueBackend(url=url).send_messages([message(1)])
    assert QueueBackend(url=url, fail_silently=True).send_messages([message(1)]) == 0


def test_unknown_options_are_refused() -> None:
    with pytest.raises(TypeError, match=r"unknown options 'urll'"):
        QueueBackend(urll="sqlite:///x.db")


def test_queue_states_after_enqueue(db: Path) -> None:
    enqueue([message(1), message(2)])
    with Queue() as queue:
        assert queue.status().counts[State.QUEUED] == 2


def test_envelope_addresses_are_as_sending_writes_them(db: Path) -> None:
    # Django 6.1's local-part-only addresses, display names, quoted local parts.
    enqueue([message(1, to=["root", "Ann <ann@example.com>", '"a b"@example.com'])])
    with SQLiteStorage(db) as storage:
        [claimed] = storage.claim(worker="w", limit=1, lease=5, now=2e9)
    assert claimed.recipients == ("root", "ann@example.com", '"a b"@example.com')
