"""Messages built to hurt the catcher: many parts, deep nesting, pathological HTML and headers.

Each is sent over SMTP to a running catcher (SMTP and web inbox on one event loop, as `mailout
serve` runs them) and checked from the outside: the SMTP reply, the bytes stored, what the API
shows; and, while the heaviest message the catcher still decodes is being read for the API,
that the SMTP greeting and /api/info keep answering.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from mailout.catcher import parse
from mailout.catcher.server import Catcher
from mailout.smtp import Envelope, SMTPClient

PROBE_TIMEOUT = 2.0  # generous: a stalled loop answers in seconds (6.7 s before), not at all


def many_parts(count: int) -> bytes:
    parts = b"".join(
        b'--b\r\nContent-Type: text/plain; name="f%d.txt"\r\n'
        b'Content-Disposition: attachment; filename="f%d.txt"\r\nContent-ID: <c%d@x>\r\n'
        b"\r\npart %d\r\n" % (i, i, i, i)
        for i in range(count)
    )
    head = b"Subject: many parts\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
    return head + parts + b"--b--\r\n"


def nested(depth: int) -> bytes:
    opening = b"".join(
        b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i)
        for i in range(depth)
    )
    closing = b"".join(b"\r\n--b%d--" % i for i in reversed(range(depth)))
    return (
        b"Subject: deep\r\n" + opening + b"Content-Type: text/plain\r\n\r\nleaf" + closing + b"\r\n"
    )


@pytest.fixture(scope="module")
def catcher() -> Iterator[Catcher]:
    with Catcher(smtp=("127.0.0.1", 0), http=("127.0.0.1", 0)).running() as running:
        yield running


@pytest.fixture(scope="module")
def web(catcher: Catcher) -> Iterator[httpx.Client]:
    assert catcher.http_url is not None
    with httpx.Client(base_url=catcher.http_url, timeout=30) as client:
        yield client


def send(catcher: Catcher, content: bytes, *, chunking: bool = True) -> int:
    """Send over SMTP; return the id the catcher gave the message (from its 250 reply)."""
    assert catcher.smtp_address is not None
    with SMTPClient(*catcher.smtp_address, timeout=30, chunking=chunking) as client:
        result = client.send(Envelope("a@example.com", ("b@example.com",)), content)
    assert result.reply.code == 250, result.reply
    return int(result.reply.text.split("message ")[1].split()[0])


def stored_exactly(catcher: Catcher, message_id: int, content: bytes) -> None:
    raw = catcher.store.raw(message_id)
    assert raw is not None
    received, _, rest = raw.partition(b"\r\n")
    assert received.startswith(b"Received: ")
    assert rest == content


@pytest.mark.parametrize("chunking", [True, False], ids=["BDAT", "DATA"])
@pytest.mark.parametrize("depth", [60, 1_000, 5_000])
def test_deep_nesting_is_stored_byte_exact_and_shown_raw(
    catcher: Catcher, web: httpx.Client, depth: int, chunking: bool
) -> None:
    # Before: "451 4.3.0 RecursionError" for 1,000 levels, and nothing stored (a 4xx invites
    # the sender to retry for ever).
    content = nested(depth)
    message_id = send(catcher, content, chunking=chunking)
    stored_exactly(catcher, message_id, content)
    shown = web.get(f"/api/messages/{message_id}")
    assert shown.status_code == 200
    body = shown.json()
    assert body["subject"] == "deep"
    assert "shown raw" in body["notice"]
    assert body["parts"] == []
    assert body["attachments"] == []
    assert web.get(f"/api/messages/{message_id}/raw").content == catcher.store.raw(message_id)


def test_ten_thousand_parts_are_stored_and_shown_raw(catcher: Catcher, web: httpx.Client) -> None:
    content = many_parts(10_000)
    message_id = send(catcher, content)
    stored_exactly(catcher, message_id, content)
    started = time.monotonic()
    body = web.get(f"/api/messages/{message_id}").json()
    print(f"\n10,000 parts: the API answered in {time.monotonic() - started:.3f} s")
    assert "10,001 lines that may start MIME parts" in body["notice"]
    assert body["subject"] == "many parts"
    assert web.get(f"/api/messages/{message_id}/attachments/0").status_code == 404


def test_a_message_within_the_limits_is_read_once(
    catcher: Catcher, web: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[int] = []
    real_read = parse.read

    def counting_read(raw: bytes) -> parse.Parsed:
        reads.append(len(raw))
        return real_read(raw)

    monkeypatch.setattr(parse, "read", counting_read)
    count = parse.MAX_PARTS - 2
    message_id = send(catcher, many_parts(count))
    body = web.get(f"/api/messages/{message_id}").json()
    assert body["notice"] is None
    assert len(body["attachments"]) == count
    download = web.get(f"/api/messages/{message_id}/attachments/{count - 1}")
    assert download.content == b"part %d" % (count - 1)
    assert web.get(f"/api/messages/{message_id}/cid/c7@x").content == b"part 7"
    assert web.get(f"/api/messages/{message_id}/html").status_code == 404  # it has none
    assert len(reads) == 1  # when it was stored; the views found it read


def test_pathological_html_and_headers_are_bounded(catcher: Catcher, web: httpx.Client) -> None:
    # "<script>" a thousand times over with no end tag was quadratic in the search index (10 s
    # for 128 KB), a To: of 20,000 addresses took the structured header parser 6.7 s.
    html = b"Content-Type: text/html\r\n\r\n" + b"<script>" * 100_000 + b"<" * 100_000 + b"\r\n"
    to = b"To: " + b", ".join(b"r%d@example.com" % i for i in range(20_000)) + b"\r\n"
    for content in (b"Subject: tags\r\n" + html, b"Subject: crowd\r\n" + to + b"\r\nhi\r\n"):
        started = time.monotonic()
        message_id = send(catcher, content)
        body = web.get(f"/api/messages/{message_id}").json()
        elapsed = time.monotonic() - started
        print(f"\n{body['subject']}: stored and shown in {elapsed:.2f} s")
        assert body["subject"] in ("tags", "crowd")
        assert elapsed < 10  # before: minutes for the tags (quadratic), seconds for the crowd


def greeting_latency(catcher: Catcher) -> float:
    assert catcher.smtp_address is not None
    started = time.monotonic()
    with socket.create_connection(catcher.smtp_address, timeout=PROBE_TIMEOUT) as sock:
        assert sock.makefile("rb").readline().startswith(b"220 ")
    return time.monotonic() - started


def test_smtp_and_the_api_answer_while_a_heavy_message_is_read(
    catcher: Catcher, web: httpx.Client
) -> None:
    """The issue: one view stalled the whole catcher (a 10,000-part message: 6.7 s without a
    greeting). Reads now run in a worker thread; the heaviest message still decoded (just under
    MAX_PARTS parts, about a second of CPU) is read while the greeting and /api/info are timed.
    """
    # Stored directly (not over SMTP, which would hand the views its own reading): the view
    # below is the first to read it, in a worker.
    heavy = catcher.store.add("a@example.com", ["b@example.com"], many_parts(parse.MAX_PARTS - 2))
    message_ids = [heavy.id]
    done = threading.Event()
    view_times: list[float] = []

    def view() -> None:
        for message_id in message_ids:  # not cached yet: each is read now
            started = time.monotonic()
            assert web.get(f"/api/messages/{message_id}").status_code == 200
            view_times.append(time.monotonic() - started)
        done.set()

    viewer = threading.Thread(target=view)
    viewer.start()
    greetings: list[float] = []
    infos: list[float] = []
    with httpx.Client(base_url=web.base_url, timeout=PROBE_TIMEOUT) as probe:
        while not done.is_set():
            greetings.append(greeting_latency(catcher))
            started = time.monotonic()
            assert probe.get("/api/info").status_code == 200
            infos.append(time.monotonic() - started)
            time.sleep(0.02)
    viewer.join()
    print(
        f"\nviews took {', '.join(f'{t:.2f}' for t in view_times)} s; during them "
        f"{len(greetings)} SMTP greetings answered in at most {max(greetings) * 1000:.0f} ms "
        f"(median {sorted(greetings)[len(greetings) // 2] * 1000:.0f} ms), /api/info in at most "
        f"{max(infos) * 1000:.0f} ms"
    )
    assert len(view_times) == 1
    assert len(greetings) >= 2  # the loop answered while the views were being read
    assert max(greetings) < PROBE_TIMEOUT
    assert max(infos) < PROBE_TIMEOUT
