"""The catcher's JSON API over a real loopback socket: uvicorn serving create_app() on a store."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn
from hypothesis import given
from hypothesis import strategies as st

import mailout
from mailout.catcher import api
from mailout.catcher.store import MessageStore
from mailout.catcher.web import LOOPBACK_HOSTS, create_app
from tests.catcher.mail import PNG, raw_message

SMTP_ADDRESS = "127.0.0.1:2525"
BINARY = bytes(range(256)) * 40 + b"\r\n\r\n.\r\n\x00"


@dataclass
class Served:
    store: MessageStore
    base_url: str
    client: httpx.Client
    server: uvicorn.Server
    app: Any


def serve(
    store: MessageStore, allowed_hosts: tuple[str, ...] | None = None
) -> tuple[uvicorn.Server, threading.Thread, str, Any]:
    app = create_app(store, smtp_address=SMTP_ADDRESS, allowed_hosts=allowed_hosts)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", ws="none", http="h11", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive(), "uvicorn did not start"
        assert time.monotonic() < deadline, "uvicorn did not start in time"
        time.sleep(0.01)
    return server, thread, f"http://127.0.0.1:{port}", app


def stop(server: uvicorn.Server, thread: threading.Thread, app: Any) -> None:
    app.state.events.close()
    server.should_exit = True
    thread.join(10)
    assert not thread.is_alive(), "uvicorn did not stop"


@pytest.fixture(scope="module")
def server_for_module() -> Iterator[Served]:
    store = MessageStore()
    server, thread, base_url, app = serve(store)
    with httpx.Client(base_url=base_url, timeout=10) as client:
        yield Served(store, base_url, client, server, app)
    stop(server, thread, app)
    store.close()


@pytest.fixture
def served(server_for_module: Served) -> Served:
    """The module's server, with an empty store (starting uvicorn per test costs 0.2 s)."""
    server_for_module.store.clear()
    return server_for_module


def add(served: Served, raw: bytes, recipients: tuple[str, ...] = ("bob@example.com",)) -> int:
    return served.store.add("ana@example.com", recipients, raw).id


# -- listing -------------------------------------------------------------------------------------


def test_list_is_newest_first_with_the_documented_fields(served: Served) -> None:
    assert served.client.get("/api/messages").json() == {"total": 0, "messages": []}
    ids = [add(served, raw_message(f"Message {n}")) for n in range(3)]
    data = served.client.get("/api/messages").json()
    assert data["total"] == 3
    assert [m["id"] for m in data["messages"]] == ids[::-1]
    first = data["messages"][0]
    assert {"id", "from", "to", "subject", "date", "size", "attachments"} <= first.keys()
    assert first["subject"] == "Message 2"
    assert first["from"] == "Ana Lima <ana@example.com>"
    assert first["to"] == ["bob@example.com"]
    assert first["attachments"] == 0
    assert first["size"] == len(served.store.raw(ids[2]) or b"")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["date"])
    assert abs(time.time() - _epoch(first["date"])) < 60


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def test_limit_and_offset_page_through(served: Served) -> None:
    ids = [add(served, raw_message(f"M{n}")) for n in range(7)]
    page = served.client.get("/api/messages", params={"limit": 3, "offset": 2}).json()
    assert page["total"] == 7
    assert [m["id"] for m in page["messages"]] == ids[::-1][2:5]
    assert served.client.get("/api/messages?limit=0").json() == {"total": 7, "messages": []}


def test_to_filters_by_envelope_recipient_including_bcc(served: Served) -> None:
    add(served, raw_message("For Bob"), ("bob@example.com",))
    add(
        served,
        raw_message("Bob and hidden Carl", bcc=("carl@example.com",)),
        ("bob@example.com", "carl@Example.COM"),
    )

    def subjects(to: str) -> list[str]:
        found = served.client.get("/api/messages", params={"to": to}).json()["messages"]
        return [m["subject"] for m in found]

    assert subjects("bob@example.com") == ["Bob and hidden Carl", "For Bob"]
    assert subjects("carl@example.com") == ["Bob and hidden Carl"]
    assert subjects("nobody@example.com") == []
    inboxes = served.client.get("/api/inboxes").json()
    assert inboxes == {
        "total": 2,
        "inboxes": [
            {"address": "bob@example.com", "count": 2},
            {"address": "carl@example.com", "count": 1},
        ],
    }


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("invoice", ["Your invoice"]),
        ("INVOICE", ["Your invoice"]),
        ("kangaroo", ["Zoo news"]),  # body text
        ("dora@example.org", ["Zoo news"]),  # an envelope recipient
        ("ana@example.com", ["Zoo news", "Your invoice"]),
        ("nothing-like-this", []),
    ],
)
def test_q_searches_subject_addresses_and_body(served: Served, q: str, expected: list[str]) -> None:
    add(served, raw_message("Your invoice", "Amount due: 10 EUR"))
    add(
        served,
        raw_message("Zoo news", "A kangaroo arrived", to=("dora@example.org",)),
        ("dora@example.org",),
    )
    found = served.client.get("/api/messages", params={"q": q}).json()
    assert [m["subject"] for m in found["messages"]] == expected
    assert found["total"] == len(expected)


# -- one message ---------------------------------------------------------------------------------


def test_message_details_decode_headers_bodies_and_list_attachments(served: Served) -> None:
    raw = raw_message(
        "Grüße, café ☕",
        "Hallo Welt\n",
        html="<p>Hallo <b>Welt</b></p>",
        attachments=(("daten.bin", BINARY, "application/octet-stream"),),
        to=("Zoë <zoe@example.com>",),
    )
    message_id = add(served, raw, ("zoe@example.com", "hidden@example.com"))
    data = served.client.get(f"/api/messages/{message_id}").json()
    assert data["subject"] == "Grüße, café ☕"
    assert data["envelope"] == {
        "mail_from": "ana@example.com",
        "recipients": ["zoe@example.com", "hidden@example.com"],
    }
    headers = {h["name"]: h["value"] for h in data["headers"]}
    assert headers["Subject"] == "Grüße, café ☕"
    assert headers["To"] == "Zoë <zoe@example.com>"
    assert data["text"].strip() == "Hallo Welt"
    assert data["html"].strip() == "<p>Hallo <b>Welt</b></p>"
    assert data["attachments"] == [
        {
            "index": 0,
            "name": "daten.bin",
            "type": "application/octet-stream",
            "size": len(BINARY),
            "inline": False,
            "content_id": None,
            "url": f"/api/messages/{message_id}/attachments/0",
        }
    ]
    assert data["parts"][0]["content_type"] == "multipart/mixed"
    assert {p["content_type"] for p in data["parts"]} >= {"text/plain", "text/html"}


def test_raw_is_the_stored_bytes_exactly(served: Served) -> None:
    raw = b"Subject: crlf \xe9 8bit\r\nFrom: a@example.com\r\n\r\nline 1\r\n.dot\r\nno newline"
    message_id = add(served, raw)
    response = served.client.get(f"/api/messages/{message_id}/raw")
    assert response.status_code == 200
    assert response.content == raw
    assert response.headers["content-type"] == "message/rfc822"
    download = served.client.get(f"/api/messages/{message_id}/raw?download=1")
    assert download.headers["content-disposition"].startswith("attachment;")


def test_attachment_bytes_type_and_file_name(served: Served) -> None:
    name = 'résumé "final"; v2.pdf'
    raw = raw_message(
        attachments=(("a.txt", b"first\n", "text/plain"), (name, BINARY, "application/pdf"))
    )
    message_id = add(served, raw)
    response = served.client.get(f"/api/messages/{message_id}/attachments/1")
    assert response.status_code == 200
    assert response.content == BINARY
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in response.headers["content-security-policy"]
    assert _filename_star(response.headers["content-disposition"]) == name
    first = served.client.get(f"/api/messages/{message_id}/attachments/0")
    assert first.content == b"first\n"
    assert first.headers["content-type"] == "text/plain"


def _filename_star(disposition: str) -> str:
    match = re.search(r"filename\*=UTF-8''([^;\s]+)", disposition)
    assert match, disposition
    return urllib.parse.unquote(match.group(1), errors="strict")


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("plain.txt", "plain.txt"),
        ("../../etc/passwd", "etcpasswd"),
        ("a\\b.txt", "ab.txt"),
        ("evil\r\nX-Injected: 1.txt", "evilX-Injected: 1.txt"),
        ("\u202etxt.exe", "txt.exe"),  # a right-to-left override is not printable
        ("", "fallback"),
        (None, "fallback"),
        ("...", "fallback"),
    ],
)
def test_content_disposition_cleans_file_names(filename: str | None, expected: str) -> None:
    value = api.content_disposition(filename, "fallback")
    assert _filename_star(value) == expected
    value.encode("ascii")


@given(st.text())
def test_content_disposition_is_always_one_safe_ascii_header(filename: str) -> None:
    value = api.content_disposition(filename, "fallback")
    value.encode("ascii")  # never raises: a header value any server can send
    assert not set(value) & set("\r\n\x00")
    assert value.startswith('attachment; filename="')
    # The quoted ASCII name holds no quote or backslash, so it cannot end early.
    ascii_name = value.split('"')[1]
    assert '"' not in ascii_name
    assert "\\" not in ascii_name
    name = _filename_star(value)
    assert "/" not in name
    assert "\\" not in name
    assert all(ch.isprintable() for ch in name)


@pytest.mark.parametrize(
    ("given_type", "served_type"),
    [
        ("application/pdf", "application/pdf"),
        ("image/svg+xml", "image/svg+xml"),
        ("TEXT/HTML", "text/html"),
        ("text/html\r\nX-Evil: 1", "application/octet-stream"),
        ("text/html; charset=utf-8", "application/octet-stream"),
        ("nonsense", "application/octet-stream"),
    ],
)
def test_media_type_passes_only_plain_types(given_type: str, served_type: str) -> None:
    assert api.media_type(given_type) == served_type


def test_html_body_is_served_under_a_script_less_remote_less_policy(served: Served) -> None:
    html = '<p>Logo <img src="cid:logo@example.com"> <img src="http://203.0.113.1/x.png"></p>'
    message_id = add(served, raw_message(html=html, inline_png="logo@example.com"))
    response = served.client.get(f"/api/messages/{message_id}/html")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    csp = _csp(response.headers["content-security-policy"])
    assert csp["default-src"] == ["'none'"]
    assert "script-src" not in csp  # so default-src 'none' applies: no script at all
    assert csp["img-src"] == ["'self'", "data:"]
    assert "sandbox" in csp
    assert f'src="/api/messages/{message_id}/cid/logo@example.com"' in response.text
    image = served.client.get(f"/api/messages/{message_id}/cid/logo@example.com")
    assert image.content == PNG
    assert image.headers["content-type"] == "image/png"
    # The RFC 2392 form (percent-encoded, in angle brackets) finds the same part.
    assert (
        served.client.get(f"/api/messages/{message_id}/cid/%3Clogo%40example.com%3E").content == PNG
    )

    remote = served.client.get(f"/api/messages/{message_id}/html?remote=1")
    remote_csp = _csp(remote.headers["content-security-policy"])
    assert remote_csp["img-src"] == ["*", "data:"]
    assert "script-src" not in remote_csp
    assert remote_csp["default-src"] == ["'none'"]


def _csp(header: str) -> dict[str, list[str]]:
    directives = [d.split() for d in header.split(";") if d.strip()]
    return {d[0]: d[1:] for d in directives}


@pytest.mark.parametrize(
    ("html", "rewritten"),
    [
        ('<img src="cid:a@b">', '<img src="/api/messages/7/cid/a@b">'),
        ("<img src='CID:a%40b'>", "<img src='/api/messages/7/cid/a%40b'>"),
        ("<td background=cid:x.y>", "<td background=/api/messages/7/cid/x.y>"),
        (
            '<div style="background:url(cid:p1)">',
            '<div style="background:url(/api/messages/7/cid/p1)">',
        ),
        ('<img src="cid:a"onerror="x">', '<img src="/api/messages/7/cid/a"onerror="x">'),
        ("no reference here: acid:x", "no reference here: acid:x"),
        ('<img src="cid:a?b#c">', '<img src="/api/messages/7/cid/a%3Fb%23c">'),
    ],
)
def test_rewrite_cids(html: str, rewritten: str) -> None:
    assert api.rewrite_cids(html, 7) == rewritten


def test_a_message_without_html_has_no_html_page(served: Served) -> None:
    message_id = add(served, raw_message())
    response = served.client.get(f"/api/messages/{message_id}/html")
    assert response.status_code == 404
    assert response.json() == {"error": f"message {message_id} has no HTML body"}


# -- deleting ------------------------------------------------------------------------------------


def test_delete_one_then_all(served: Served) -> None:
    ids = [add(served, raw_message(f"M{n}")) for n in range(3)]
    assert served.client.delete(f"/api/messages/{ids[1]}").json() == {"deleted": 1}
    assert served.client.get(f"/api/messages/{ids[1]}").status_code == 404
    assert served.client.delete(f"/api/messages/{ids[1]}").status_code == 404
    assert [m["id"] for m in served.client.get("/api/messages").json()["messages"]] == [
        ids[2],
        ids[0],
    ]
    assert served.client.delete("/api/messages").json() == {"deleted": 2}
    assert served.client.get("/api/messages").json() == {"total": 0, "messages": []}


# -- bad requests --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "status", "error"),
    [
        ("GET", "/api/messages?limit=abc", 400, "limit must be an integer, not 'abc'"),
        ("GET", "/api/messages?limit=501", 400, "limit must be between 0 and 500, not 501"),
        ("GET", "/api/messages?limit=-1", 400, "limit must be between 0 and 500, not -1"),
        ("GET", "/api/messages?offset=-5", 400, None),
        ("GET", "/api/messages?offset=1.5", 400, "offset must be an integer, not '1.5'"),
        ("GET", "/api/messages?q=" + "x" * 1001, 400, "q must be at most 1000 characters"),
        ("GET", "/api/messages/abc", 400, "message id must be an integer, not 'abc'"),
        ("GET", "/api/messages/0", 400, None),
        ("GET", "/api/messages/999", 404, "no message 999"),
        ("GET", "/api/messages/999/raw", 404, "no message 999"),
        ("GET", "/api/messages/999/html", 404, "no message 999"),
        ("DELETE", "/api/messages/999", 404, "no message 999"),
        ("GET", "/api/messages/{id}/attachments/5", 404, None),
        ("GET", "/api/messages/{id}/attachments/x", 400, None),
        ("GET", "/api/messages/{id}/attachments/-1", 400, None),
        ("GET", "/api/messages/{id}/cid/missing@example.com", 404, None),
        ("GET", "/api/wait?timeout=soon", 400, "timeout must be a number of seconds, not 'soon'"),
        ("GET", "/api/wait?timeout=-1", 400, None),
        ("GET", "/api/wait?timeout=nan", 400, None),
        ("GET", "/api/nothing-here", 404, "Not Found"),
        ("POST", "/api/messages", 405, "Method Not Allowed"),
    ],
)
def test_bad_requests_answer_json_errors(
    served: Served, method: str, path: str, status: int, error: str | None
) -> None:
    message_id = add(served, raw_message(attachments=(("a.txt", b"a", "text/plain"),)))
    response = served.client.request(method, path.replace("{id}", str(message_id)))
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert isinstance(body["error"], str)
    assert body["error"]
    if error is not None:
        assert body["error"] == error


# -- waiting -------------------------------------------------------------------------------------


def test_wait_returns_an_existing_match_at_once(served: Served) -> None:
    add(served, raw_message("Welcome Bob"), ("bob@example.com",))
    add(served, raw_message("Welcome Carl"), ("carl@example.com",))
    started = time.monotonic()
    response = served.client.get("/api/wait", params={"to": "carl@example.com", "timeout": 5})
    assert time.monotonic() - started < 2
    assert response.status_code == 200
    assert response.json()["subject"] == "Welcome Carl"
    assert response.json()["text"].strip() == "Plain body"
    by_subject = served.client.get("/api/wait", params={"subject": "welcome BOB"}).json()
    assert by_subject["subject"] == "Welcome Bob"


def test_wait_returns_a_message_that_arrives_while_waiting(served: Served) -> None:
    add(served, raw_message("Not this one"), ("dora@example.com",))
    timer = threading.Timer(
        0.4,
        lambda: [
            add(served, raw_message("Other recipient"), ("bob@example.com",)),
            add(served, raw_message("Reset your password"), ("dora@example.com",)),
        ],
    )
    started = time.monotonic()
    timer.start()
    try:
        response = served.client.get(
            "/api/wait", params={"to": "dora@example.com", "subject": "password", "timeout": 10}
        )
    finally:
        timer.join()
    elapsed = time.monotonic() - started
    assert response.status_code == 200, response.text
    assert response.json()["subject"] == "Reset your password"
    assert 0.3 < elapsed < 3


def test_wait_times_out_with_408(served: Served) -> None:
    started = time.monotonic()
    response = served.client.get("/api/wait", params={"subject": "never", "timeout": 0.5})
    elapsed = time.monotonic() - started
    assert response.status_code == 408
    assert response.json() == {"error": "no matching message arrived within 0.5 s"}
    assert 0.4 < elapsed < 3


def test_wait_caps_the_timeout(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api, "MAX_WAIT", 0.3)
    started = time.monotonic()
    response = served.client.get("/api/wait", params={"subject": "never", "timeout": 3600})
    assert response.status_code == 408
    assert time.monotonic() - started < 3


# -- live events ---------------------------------------------------------------------------------


def _events(response: httpx.Response) -> Iterator[tuple[str, dict[str, Any]]]:
    kind, data = "message", ""
    for line in response.iter_lines():
        if line.startswith("event:"):
            kind = line[6:].strip()
        elif line.startswith("data:"):
            data += line[5:].strip()
        elif line == "" and data:
            yield kind, json.loads(data)
            kind, data = "message", ""


def test_events_stream_added_deleted_and_cleared(served: Served) -> None:
    with served.client.stream("GET", "/api/events") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = _events(response)
        assert next(events) == ("hello", {"total": 0})
        message_id = add(served, raw_message("Live one"))
        kind, data = next(events)
        assert (kind, data["id"], data["message"]["subject"]) == ("added", message_id, "Live one")
        served.store.delete(message_id)
        assert next(events) == ("deleted", {"kind": "deleted", "id": message_id})
        served.store.clear()
        assert next(events) == ("cleared", {"kind": "cleared", "id": None})


def test_events_from_another_thread_arrive_promptly(served: Served) -> None:
    with served.client.stream("GET", "/api/events") as response:
        events = _events(response)
        next(events)
        timer = threading.Timer(0.2, lambda: add(served, raw_message("From a thread")))
        started = time.monotonic()
        timer.start()
        kind, data = next(events)
        timer.join()
        assert (kind, data["message"]["subject"]) == ("added", "From a thread")
        assert time.monotonic() - started < 1.5


def test_closing_the_hub_ends_streams_so_the_server_stops_at_once() -> None:
    store = MessageStore()
    server, thread, base_url, app = serve(store)
    with httpx.Client(base_url=base_url, timeout=10) as client:
        with client.stream("GET", "/api/events") as response:
            events = _events(response)
            next(events)
            started = time.monotonic()
            stop(server, thread, app)
            assert list(events) == []  # the stream ended cleanly
        assert time.monotonic() - started < 3
    store.close()


def test_streams_end_by_themselves_and_say_when_to_reconnect(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api, "STREAM_LIFETIME", 0.5)
    started = time.monotonic()
    with served.client.stream("GET", "/api/events") as response:
        text = response.read().decode()
    assert text.startswith("retry: 1000\n\n")
    assert time.monotonic() - started < 3


# -- the page and its headers --------------------------------------------------------------------


def test_every_response_carries_the_security_headers(served: Served) -> None:
    message_id = add(
        served, raw_message(html="<p>x</p>", attachments=(("a.txt", b"a", "text/plain"),))
    )
    for path in [
        "/",
        "/static/app.js",
        "/static/app.css",
        "/favicon.ico",
        "/api/messages",
        f"/api/messages/{message_id}",
        f"/api/messages/{message_id}/raw",
        f"/api/messages/{message_id}/html",
        f"/api/messages/{message_id}/attachments/0",
        "/api/messages/999",
        "/nothing-here",
    ]:
        headers = served.client.get(path).headers
        assert headers["x-content-type-options"] == "nosniff", path
        assert headers["referrer-policy"] == "no-referrer", path
        assert "default-src 'none'" in headers["content-security-policy"], path


def test_the_page_allows_only_its_own_scripts_and_frames(served: Served) -> None:
    response = served.client.get("/")
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    csp = _csp(response.headers["content-security-policy"])
    assert csp["script-src"] == ["'self'"]
    assert csp["frame-src"] == ["'self'"]
    assert csp["connect-src"] == ["'self'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert "<script>" not in response.text  # no inline script: the CSP would block it anyway
    assert '<script src="/static/app.js" defer></script>' in response.text


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/static/app.js", "text/javascript; charset=utf-8"),
        ("/static/app.css", "text/css; charset=utf-8"),
        ("/static/favicon.svg", "image/svg+xml"),
    ],
)
def test_static_files_have_their_types(served: Served, path: str, content_type: str) -> None:
    response = served.client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == content_type
    assert served.client.get("/static/../web.py").status_code == 404
    assert served.client.get("/static/index.html").status_code == 404


def test_info_names_the_smtp_address(served: Served) -> None:
    assert served.client.get("/api/info").json() == {
        "smtp": SMTP_ADDRESS,
        "version": mailout.__version__,
    }


def test_importing_mailout_does_not_import_starlette() -> None:
    code = "import sys, mailout, mailout.catcher; sys.exit('starlette' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# -- DNS rebinding -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def guarded() -> Iterator[httpx.Client]:
    """A server that answers only the loopback host names."""
    store = MessageStore()
    server, thread, base_url, app = serve(store, LOOPBACK_HOSTS)
    with httpx.Client(base_url=base_url, timeout=10) as client:
        yield client
    stop(server, thread, app)
    store.close()


@pytest.mark.parametrize(
    ("host", "answered"),
    [
        ("127.0.0.1:8025", True),
        ("localhost:8025", True),
        ("LOCALHOST", True),
        ("inbox.localhost:8025", True),
        ("[::1]:8025", True),
        ("localhost.:8025", True),
        ("attacker.example", False),
        ("attacker.example:8025", False),
        ("localhost.attacker.example", False),
        ("127.0.0.1.attacker.example", False),
        ("", False),
    ],
)
def test_allowed_hosts_refuse_other_host_names(
    guarded: httpx.Client, host: str, answered: bool
) -> None:
    response = guarded.get("/api/messages", headers={"Host": host})
    assert response.status_code == (200 if answered else 421)
    assert response.headers["x-content-type-options"] == "nosniff"


def test_without_allowed_hosts_any_host_is_answered(served: Served) -> None:
    response = served.client.get("/api/messages", headers={"Host": "mailcatcher:8025"})
    assert response.status_code == 200


@given(st.text())
def test_rewriting_cids_never_adds_quotes_or_brackets(html: str) -> None:
    rewritten = api.rewrite_cids(html, 7)
    for ch in "\"'<>()\\ \n":
        assert rewritten.count(ch) == html.count(ch)
