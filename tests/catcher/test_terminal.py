"""`mailout serve` prints caught mail to the operator's terminal: nothing in it may drive that
terminal. A real `mailout serve` receives messages full of escape sequences over SMTP; its
output holds none of them, only their escaped forms."""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
import time
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailout.catcher.terminal import printable

TITLE = "\x1b]0;pwned\x07"  # OSC 0: retitle the terminal
CLEAR = "\x1b[2J\x1b[H"  # CSI: clear the screen
LINK = "\x1b]8;;https://evil.example/\x1b\\click me\x1b]8;;\x1b\\"  # OSC 8: a hyperlink
C1 = "\x9b31m\x9d0;x\x9c"  # the one-byte C1 forms of CSI, OSC and ST
BIDI = "\u202egnp.exe"  # right-to-left override: shows as "exe.png"
HOSTILE = TITLE + CLEAR + LINK + C1 + BIDI + "\r\x08\x7f"
# Characters a terminal acts on, and invisible ones that reorder or hide text.
FORBIDDEN = {chr(c) for c in (*range(0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0))} | set(
    "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200b\u200e\u200f\u2028\u2029"
)


def encoded(text: str) -> str:
    """An RFC 2047 word: how escape sequences reach a subject or display name in real mail."""
    return "=?utf-8?b?" + base64.b64encode(text.encode()).decode() + "?="


def message() -> bytes:
    name = encoded(HOSTILE)
    lines = [
        f"From: {name} <from@example.com>",
        f"To: {encoded(CLEAR)} <to@example.com>",
        f"Subject: {encoded('Invoice ' + HOSTILE)}",
        f"X-Raw: raw {TITLE}{C1}",  # raw bytes in a header, no encoding at all
        "MIME-Version: 1.0",
        'Content-Type: multipart/mixed; boundary="b"',
        "",
        "--b",
        "Content-Type: text/plain; charset=utf-8",
        "",
        f"Body {HOSTILE} end",
        "--b",
        "Content-Type: application/octet-stream",
        f'Content-Disposition: attachment; filename="{encoded(BIDI + TITLE)}"',
        "",
        "data",
        "--b--",
        "",
    ]
    return "\r\n".join(lines).encode("utf-8")


def serve_and_catch(*options: str) -> str:
    """Run `mailout serve`, send the hostile message over SMTP, return what it printed."""
    process = subprocess.Popen(
        [sys.executable, "-m", "mailout", "serve", "--smtp", "127.0.0.1:0", "--http", "off",
         *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        assert process.stdout is not None
        first = process.stdout.readline().decode()
        port = int(first.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            reader = sock.makefile("rb")
            reply = reader.readline
            reply()
            for command in (
                b"EHLO me\r\n",
                b"MAIL FROM:<\xe2\x80\xaeevil@example.com> SMTPUTF8\r\n",
                b"RCPT TO:<to@example.com>\r\n",
                b"DATA\r\n",
            ):
                sock.sendall(command)
                while (line := reply())[3:4] == b"-":
                    pass
                assert line[:1] in b"23", line
            sock.sendall(message() + b".\r\n")
            assert reply().startswith(b"250")
        time.sleep(0.3)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=15)
        assert process.returncode == 0, err
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    return first + out.decode("utf-8")  # strictly UTF-8: a lone surrogate would not decode


@pytest.mark.parametrize(
    "options", [(), ("--quiet",), ("--print",)], ids=["default", "quiet", "print"]
)
def test_nothing_printed_can_drive_the_terminal(options: tuple[str, ...]) -> None:
    out = serve_and_catch(*options)
    lines = out.splitlines()
    assert any("Invoice" in line for line in lines), out  # the message was reported
    assert not FORBIDDEN & set(out.replace("\n", "")), repr(out)
    assert "\\x1b]0;pwned\\x07" in out  # shown, escaped, so the operator sees the attempt
    assert "\\u202e" in out
    if options == ("--print",):
        assert "Body \\x1b]0;pwned" in out
        assert "X-Raw:" in out
        assert "[attachment 0: \\u202egnp.exe\\x1b]0;pwned\\x07" in out


SAFE_EXTRA = {"\t", "\n"}


@settings(max_examples=300, deadline=None)
@given(text=st.text(), newlines=st.booleans())
def test_printable_leaves_nothing_a_terminal_acts_on(text: str, newlines: bool) -> None:
    shown = printable(text, newlines=newlines)
    allowed = {"\t", "\n"} if newlines else {"\t"}
    for char in shown:
        category = unicodedata.category(char)
        assert char in allowed or category not in ("Cc", "Cs", "Zl", "Zp"), repr(char)
        assert char not in FORBIDDEN or char in allowed
    if not any(c in FORBIDDEN or unicodedata.category(c) in ("Cc", "Cs", "Cf") for c in text):
        assert shown == text  # ordinary text is printed as it is


def test_print_mode_says_why_a_message_is_shown_raw() -> None:
    from mailout.catcher.server import render
    from mailout.catcher.store import MessageStore

    nested = b"".join(
        b"Content-Type: multipart/mixed; boundary=n%d\r\n\r\n--n%d\r\n" % (i, i) for i in range(500)
    )
    raw = b"Subject: deep \x1b[2J\r\n" + nested + b"Content-Type: text/plain\r\n\r\nleaf\r\n"
    with MessageStore() as store:
        summary = store.add("a@example.com", ["b@example.com"], raw)
        shown = render(summary, raw)
    assert "[This message is shown raw: its MIME parts nest more than 50 deep." in shown
    assert "Subject: deep \\x1b[2J" in shown
    assert "\x1b" not in shown
