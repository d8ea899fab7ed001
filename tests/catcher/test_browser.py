"""The web inbox in a real headless Chromium (Debian's), driven by Playwright's Python package.

Never downloads a browser: it runs /usr/bin/chromium and skips when that is missing. Screenshots
go to test-artifacts/ (gitignored) for a human to look at.
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from mailout.catcher.store import MessageStore
from mailout.catcher.web import create_app
from tests.catcher.mail import PNG, raw_message

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
REMOTE = "203.0.113.1"  # TEST-NET-3 (RFC 5737): never a real host

pytestmark = pytest.mark.skipif(
    not os.access(CHROMIUM, os.X_OK),
    reason=f"no Chromium at {CHROMIUM} (Debian package 'chromium'; .ci/run installs it)",
)
sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect


@dataclass
class Inbox:
    store: MessageStore
    base_url: str


@dataclass
class Watch:
    """What a page did that it must not: remote requests and script runs."""

    remote_requests: list[str] = field(default_factory=list)  # refused by the test's network
    pwned: list[str] = field(default_factory=list)  # calls to pwn() from any frame


@dataclass
class Canary:
    """A second web server on loopback, another origin than the inbox: it counts its hits.

    Requests to 203.0.113.1 are refused by the browser context's router before they leave, so
    they show only that the browser tried; a hit here shows a request really went out.
    """

    origin: str
    hits: list[str]


@pytest.fixture(scope="module")
def canary() -> Iterator[Canary]:
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(PNG)))
            self.end_headers()
            self.wfile.write(PNG)

        do_POST = do_GET

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Canary(f"http://127.0.0.1:{server.server_address[1]}", hits)
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture(scope="module")
def inbox() -> Iterator[Inbox]:
    store = MessageStore()
    app = create_app(store, smtp_address="127.0.0.1:2525")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", ws="none", http="h11", lifespan="on")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive(), "uvicorn did not start"
        assert time.monotonic() < deadline, "uvicorn did not start in time"
        time.sleep(0.01)
    yield Inbox(store, f"http://127.0.0.1:{port}")
    app.state.events.close()
    server.should_exit = True
    thread.join(10)
    store.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def watch() -> Watch:
    return Watch()


@pytest.fixture
def page(
    inbox: Inbox, browser: Any, watch: Watch, canary: Canary, request: pytest.FixtureRequest
) -> Iterator[Any]:
    inbox.store.clear()
    canary.hits.clear()
    context = browser.new_context(viewport={"width": 1280, "height": 860}, accept_downloads=True)
    context.set_default_timeout(5000)

    def route(route: Any) -> None:
        # Anything not for loopback is recorded and refused: the test network stays closed.
        # (The router sees what the browser sends to the network: not what CSP blocked.)
        url = route.request.url
        if url.startswith(("http://127.0.0.1:", "data:", "about:", "blob:")):
            route.continue_()
        else:
            watch.remote_requests.append(url)
            route.abort()

    context.route("**/*", route)
    # A script that ever runs, in the page or any frame, calls this (or sets window.pwned).
    context.expose_binding("pwn", lambda source, value="": watch.pwned.append(str(value)))
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    yield page
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"browser-{request.node.name}.png"), full_page=True)
    context.close()


def open_inbox(page: Any, inbox: Inbox) -> None:
    page.goto(inbox.base_url + "/")
    page.wait_for_selector("#live.ok")  # the event stream is connected
    page.wait_for_selector("#list[aria-busy=false]")  # and the list loaded


def list_subjects(page: Any) -> list[str]:
    return [s.strip() for s in page.locator("#list .subj").all_inner_texts()]


def test_a_message_arriving_while_the_page_is_open_appears_without_reload(
    page: Any, inbox: Inbox
) -> None:
    inbox.store.add("ana@example.com", ["bob@example.com"], raw_message("Already here"))
    open_inbox(page, inbox)
    assert list_subjects(page) == ["Already here"]
    page.evaluate("window.sameDocument = true")
    started = time.monotonic()
    inbox.store.add("ana@example.com", ["bob@example.com"], raw_message("Fresh off the wire"))
    page.locator("#list .subj", has_text="Fresh off the wire").wait_for(timeout=3000)
    assert time.monotonic() - started < 2
    assert list_subjects(page) == ["Fresh off the wire", "Already here"]
    assert page.evaluate("window.sameDocument") is True  # no reload happened
    assert page.locator("#count").text_content() == "2 messages"


def test_search_and_inbox_filter_narrow_the_list(page: Any, inbox: Inbox) -> None:
    inbox.store.add(
        "ana@example.com", ["bob@example.com"], raw_message("Your invoice", "Pay 10 EUR")
    )
    inbox.store.add(
        "ana@example.com",
        ["carl@example.com"],
        raw_message("Zoo news", "A kangaroo", to=("carl@example.com",)),
    )
    inbox.store.add("ana@example.com", ["bob@example.com"], raw_message("Lunch?", "At noon"))
    open_inbox(page, inbox)
    items = page.locator("#list .subj")
    expect(items).to_have_count(3)

    search = page.get_by_label("Search subject, addresses and text")
    search.fill("invoice")
    expect(items).to_have_text(["Your invoice"])
    search.fill("kangaroo")  # body text
    expect(items).to_have_text(["Zoo news"])
    search.fill("carl@example")  # an address
    expect(items).to_have_text(["Zoo news"])
    search.fill("")
    expect(items).to_have_count(3)

    page.get_by_label("Inbox").select_option("bob@example.com")
    expect(items).to_have_text(["Lunch?", "Your invoice"])
    expect(page.locator("#count")).to_have_text("2 messages found")


def test_the_html_tab_renders_the_html_with_inline_images(page: Any, inbox: Inbox) -> None:
    html = (
        '<h1 id="greeting">Hello <em>Ana</em></h1>'
        '<p>Your logo: <img id="logo" src="cid:logo@example.com" width="20" height="20"></p>'
    )
    added = inbox.store.add(
        "ana@example.com",
        ["bob@example.com"],
        raw_message("Rendered", "Plain version", html=html, inline_png="logo@example.com"),
    )
    open_inbox(page, inbox)
    page.locator("#list a.msg").first.click()
    page.wait_for_url(f"**/#/message/{added.id}")
    frame = page.frame_locator("#html-frame")
    expect(frame.locator("#greeting")).to_have_text("Hello Ana")
    expect(page.locator("#v-subject")).to_have_text("Rendered")
    # The cid: image is loaded from the message itself.
    logo = frame.locator("#logo")
    expect(logo).to_have_attribute("src", f"/api/messages/{added.id}/cid/logo@example.com")
    deadline = time.monotonic() + 3
    while logo.evaluate("img => img.naturalWidth") != 1 and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    assert logo.evaluate("img => img.complete && img.naturalWidth") == 1
    # Sandboxed without allow-same-origin: the page cannot reach into the frame, nor it out.
    assert page.evaluate("document.getElementById('html-frame').contentDocument") is None
    assert page.get_attribute("#html-frame", "sandbox") == ""

    page.get_by_role("tab", name="Text").click()
    expect(page.locator("#v-text")).to_have_text(re.compile(r"^\s*Plain version\s*$"))
    page.get_by_role("tab", name="Headers").click()
    headers = page.locator("#v-headers tr").evaluate_all(
        "rows => rows.map(r => [r.cells[0].textContent, r.cells[1].textContent])"
    )
    assert ["Subject", "Rendered"] in headers
    page.get_by_role("tab", name="Raw").click()
    expect(page.locator("#v-raw")).to_contain_text("Subject: Rendered")
    page.get_by_role("tab", name="MIME parts").click()
    expect(page.locator("#v-parts")).to_contain_text("image/png")


def test_an_attachment_downloads_with_identical_bytes(page: Any, inbox: Inbox) -> None:
    content = bytes(range(256)) * 64 + b"\r\n.\r\n\x00end"
    name = "résumé 2026.bin"
    inbox.store.add(
        "ana@example.com",
        ["bob@example.com"],
        raw_message("With a file", attachments=((name, content, "application/octet-stream"),)),
    )
    open_inbox(page, inbox)
    expect(page.locator("#list .clip")).to_have_count(1)  # the attachment mark
    page.locator("#list a.msg").first.click()
    page.get_by_role("tab", name="Attachments (1)").click()
    with page.expect_download() as info:
        page.get_by_role("link", name=name).click()
    download = info.value
    assert download.suggested_filename == name
    assert Path(download.path()).read_bytes() == content


def test_delete_one_and_delete_all(page: Any, inbox: Inbox) -> None:
    for subject in ("First", "Second", "Third"):
        inbox.store.add("ana@example.com", ["bob@example.com"], raw_message(subject))
    open_inbox(page, inbox)
    page.locator("#list a.msg", has_text="Second").click()
    expect(page.locator("#v-subject")).to_have_text("Second")
    page.locator("#v-delete").click()
    expect(page.locator("#list .subj")).to_have_text(["Third", "First"])
    assert inbox.store.count() == 2
    page.locator("#delete-all").click()  # confirm() is accepted by the page fixture
    expect(page.locator("#empty")).to_be_visible()
    expect(page.locator("#view")).to_be_hidden()
    assert inbox.store.count() == 0


INJECTION = "<script>pwn('inline-script')</script><img src=x onerror=\"pwn('onerror')\">"
INJECTION_UNQUOTED = "<script>pwn('display-name')</script><img src=x onerror=pwn('onerror')>"


def hostile_html(origins: list[str]) -> str:
    """HTML that tries every way to run a script or call out, to each of ``origins``."""
    loads = "".join(
        f"""
<link rel="stylesheet" href="{o}/style.css"><link rel="prefetch" href="{o}/prefetch">
<style>@import url({o}/import.css); body {{ background: url({o}/bg.png); }}
@font-face {{ font-family: f; src: url({o}/font.woff); }} p {{ font-family: f; }}</style>
<img src="{o}/x.png"><img srcset="{o}/srcset.png 2x"><input type="image" src="{o}/input.png">
<svg><image href="{o}/svg.png"/></svg><video poster="{o}/poster.png" src="{o}/v.mp4"></video>
<audio src="{o}/a.mp3" autoplay></audio><iframe src="{o}/frame"></iframe>
<object data="{o}/object"></object><embed src="{o}/embed">
<div style="background-image: url('{o}/inline-style.png')">styled</div>
<a id="ping" href="#x" ping="{o}/ping">ping</a>"""
        for o in origins
    )
    return f"""<!doctype html>
<html><head>
<meta http-equiv="refresh" content="0;url={origins[0]}/refresh">
<base href="{origins[0]}/">
</head><body>
<p id="visible">Visible text</p>
<script>pwn('script-in-iframe'); window.pwned = 1; parent.pwned = 1;</script>
<script src="{origins[0]}/evil.js"></script>
<img src="x" onerror="pwn('img-onerror')">
<svg onload="pwn('svg-onload')"></svg>
<a id="jslink" href="javascript:pwn('javascript-link')">click me</a>
<iframe srcdoc="<script>parent.pwn('srcdoc')</script>"></iframe>
<form action="{origins[0]}/form" method="post"><button id="submit">go</button></form>
{loads}
</body></html>"""


def test_hostile_mail_is_shown_inert(page: Any, inbox: Inbox, watch: Watch, canary: Canary) -> None:
    evil_name = f"{INJECTION}.html"
    raw = raw_message(
        f"Subject {INJECTION}",
        f"Text {INJECTION} javascript:pwn('text')",
        to=(f'"{INJECTION_UNQUOTED}" <victim@example.com>',),  # a display name full of markup
        html=hostile_html([canary.origin, f"http://{REMOTE}"]),
        attachments=((evil_name, b"<script>pwn('attachment')</script>", "text/html"),),
    )
    inbox.store.add(
        "<img src=x onerror=pwn('mail-from')>@example.com",
        ["victim@example.com", "<script>pwn('rcpt')</script>@example.com"],
        raw,
    )
    open_inbox(page, inbox)
    expect(page.locator("#list .subj")).to_have_text([f"Subject {INJECTION}"])  # literally
    page.locator("#list a.msg").first.click()
    frame = page.frame_locator("#html-frame")
    expect(frame.locator("#visible")).to_have_text("Visible text")
    expect(page.locator("#v-subject")).to_have_text(f"Subject {INJECTION}")
    expect(page.locator("#v-to")).to_contain_text(INJECTION_UNQUOTED)
    expect(page.locator("#v-envelope")).to_contain_text("<script>pwn('rcpt')</script>@example")
    page.get_by_label("Inbox").select_option("<script>pwn('rcpt')</script>@example.com")
    expect(page.locator("#list .subj")).to_have_count(1)

    frame.locator("#jslink").click()
    frame.locator("#ping").first.click()
    frame.locator("#submit").click()
    for tab in ("Text", "Headers", "Raw", "MIME parts", "Attachments (1)", "HTML"):
        page.get_by_role("tab", name=tab).click()
    page.get_by_role("tab", name="Attachments (1)").click()
    expect(page.locator("#v-attachments .download")).to_have_text(evil_name)
    page.get_by_role("tab", name="Raw").click()
    expect(page.locator("#v-raw")).to_contain_text("Visible text")
    page.wait_for_timeout(700)  # time for anything (onerror, refresh, fonts, ping) to fire

    assert watch.pwned == []
    assert page.evaluate("window.pwned") is None
    assert canary.hits == []
    assert watch.remote_requests == []
    assert page.locator("script").count() == 1  # ours: app.js
    assert page.locator("#list img, #view img").count() == 0
    # The preview never navigated away (no meta refresh, form post or javascript: URL).
    previews = [f for f in page.frames if "/api/messages/" in f.url]
    assert [urllib.parse.urlsplit(f.url).path.rsplit("/", 1)[-1] for f in previews] == ["html"]


def test_remote_content_loads_only_when_asked(
    page: Any, inbox: Inbox, watch: Watch, canary: Canary
) -> None:
    html = (
        f'<p id="p">Remote</p><img src="{canary.origin}/tracker.png">'
        f'<img src="http://{REMOTE}/tracker.png"><script>pwn("x")</script>'
    )
    inbox.store.add("ana@example.com", ["bob@example.com"], raw_message("Tracker", html=html))
    open_inbox(page, inbox)
    page.locator("#list a.msg").first.click()
    expect(page.frame_locator("#html-frame").locator("#p")).to_have_text("Remote")
    page.wait_for_timeout(300)
    assert canary.hits == []
    assert watch.remote_requests == []

    page.get_by_label("Load remote content (images, styles, fonts)").check()
    expect(page.locator("#html-frame")).to_have_attribute("src", re.compile(r"\?remote=1$"))
    expect(page.frame_locator("#html-frame").locator("#p")).to_have_text("Remote")
    deadline = time.monotonic() + 3
    while not (canary.hits and watch.remote_requests) and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    # Asked for now (one really served, one refused by this test's network); still no script.
    assert canary.hits == ["/tracker.png"]
    assert watch.remote_requests == [f"http://{REMOTE}/tracker.png"]
    assert watch.pwned == []


def test_keyboard_navigation(page: Any, inbox: Inbox) -> None:
    for subject in ("One", "Two", "Three"):
        inbox.store.add(
            "ana@example.com", ["bob@example.com"], raw_message(subject, html=f"<p>{subject}</p>")
        )
    open_inbox(page, inbox)
    page.keyboard.press("j")
    expect(page.locator("#v-subject")).to_have_text("Three")
    page.keyboard.press("j")
    expect(page.locator("#v-subject")).to_have_text("Two")
    page.keyboard.press("k")
    expect(page.locator("#v-subject")).to_have_text("Three")
    expect(page.locator("#list a[aria-current=true]")).to_have_text(re.compile("Three"))
    page.get_by_role("tab", name="HTML").focus()
    page.keyboard.press("ArrowRight")
    expect(page.get_by_role("tab", name="Text")).to_have_attribute("aria-selected", "true")
    expect(page.get_by_role("tab", name="Text")).to_be_focused()
    expect(page.locator("#panel-text")).to_be_visible()
    page.keyboard.press("/")
    expect(page.locator("#q")).to_be_focused()


def test_a_message_too_complex_to_decode_is_shown_raw_with_a_notice(
    page: Any, inbox: Inbox
) -> None:
    depth = 2_000  # far past parse.MAX_DEPTH: the email package would recurse until it fails
    opening = b"".join(
        b"Content-Type: multipart/mixed; boundary=n%d\r\n\r\n--n%d\r\n" % (i, i)
        for i in range(depth)
    )
    raw = b"Subject: Nested deep\r\n" + opening + b"Content-Type: text/plain\r\n\r\nleaf\r\n"
    inbox.store.add("ana@example.com", ["bob@example.com"], raw_message("Plain"))
    inbox.store.add("ana@example.com", ["bob@example.com"], raw)
    open_inbox(page, inbox)
    page.locator("#list a.msg").first.click()
    expect(page.locator("#v-subject")).to_have_text("Nested deep")
    expect(page.locator("#v-notice")).to_be_visible()
    expect(page.locator("#v-notice")).to_contain_text("shown raw")
    expect(page.get_by_role("tab", name="Raw")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#v-raw")).to_contain_text("boundary=n1999")
    page.locator("#list a.msg").nth(1).click()  # an ordinary message: no notice
    expect(page.locator("#v-subject")).to_have_text("Plain")
    expect(page.locator("#v-notice")).to_be_hidden()
