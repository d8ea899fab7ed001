"""``mailout demo``: start the mail catcher, send it a realistic message, show where to see it."""

from __future__ import annotations

import signal
import sys
import time
from email.message import MIMEPart
from email.utils import make_msgid

import mailout
from mailout.backends.smtp import EmailBackend as SMTPBackend

__all__ = ["PDF", "PNG", "demo_message", "run_demo"]

PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj 2 0 obj<</Type/Pages/Kids[3 0 R]"
    b"/Count 1>>endobj 3 0 obj<</Type/Page/MediaBox[0 0 200 100]/Parent 2 0 R>>endobj\n"
    b"trailer<</Root 1 0 R>>\n%%EOF\n"
)
# A 16x16 PNG (a mailout-blue square), small enough to inline here.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d494844520000001000000010080200000090916836000000164944415478da"
    "6390cf7f4d126218d530aa61f86a0000a0d079101cabe4fc0000000049454e44ae426082"
)


def demo_message() -> mailout.EmailMultiAlternatives:
    """Text + HTML with an inline (cid:) logo + a PDF attachment, to two people and a Bcc."""
    cid = make_msgid(domain="mailout.example")
    logo = MIMEPart()
    logo.set_content(
        PNG, maintype="image", subtype="png", disposition="inline", cid=cid, filename="logo.png"
    )
    message = mailout.EmailMultiAlternatives(
        subject="Your invoice from mailout ☕",
        body="Hello Ana,\n\nYour invoice for November is attached.\n\n— The mailout team\n",
        from_email="mailout demo <demo@example.com>",
        to=["Ana Lima <ana@example.com>"],
        cc=["Bruno <bruno@example.com>"],
        bcc=["audit@example.com"],
        reply_to=["billing@example.com"],
    )
    message.attach_alternative(
        f'<p><img src="cid:{cid[1:-1]}" alt="mailout" width="16" height="16"> Hello Ana,</p>'
        "<p>Your invoice for November is <strong>attached</strong>.</p>"
        "<p>— The mailout team</p>",
        "text/html",
    )
    message.attach(logo)
    message.attach("invoice-2026-11.pdf", PDF, "application/pdf")
    return message


def run_demo(port: int = 0, *, wait: bool = True) -> int:
    try:
        from mailout.catcher.server import Catcher, format_address, web_available
    except ImportError as exc:  # pragma: no cover - the module itself is always there
        raise SystemExit(f"mailout demo: {exc}") from None
    with_web = web_available()
    try:
        catcher = Catcher(smtp=("127.0.0.1", port), http=("127.0.0.1", 0) if with_web else None)
    except ImportError:
        raise SystemExit(
            'mailout demo needs the server extra: pip install "mailout[server]"'
        ) from None
    catcher.start_in_thread()
    try:
        assert catcher.smtp_address is not None
        host, smtp_port = catcher.smtp_address
        print(f"SMTP listening on {format_address(catcher.smtp_address)}")
        if catcher.http_url:
            print(f"Web inbox on {catcher.http_url}")
        else:
            print("(no web inbox: starlette and uvicorn are not installed; SMTP only)")
        backend = SMTPBackend(host=host, port=smtp_port, use_tls=False, use_ssl=False)
        message = demo_message()
        sent = backend.send_messages([message])
        print(f"\nSent {sent} message through mailout's SMTP backend:")
        _, summaries = catcher.store.list()
        for summary in summaries:
            print(f"  #{summary.id} {summary.subject!r}  from {summary.from_header}")
            print(f"     envelope recipients: {', '.join(summary.recipients)}")
            print(f"     {summary.size} bytes, {summary.attachments} attachment(s)")
        for address, count in catcher.store.inboxes():
            print(f"  inbox {address}: {count} message(s)")
        print("\nBcc (audit@example.com) went in the envelope only, so it has its own inbox.")
        if catcher.http_url:
            print(f"Open {catcher.http_url} to read it: HTML, text, headers, source, parts.")
        print(
            "Send your own:\n"
            f"  EMAIL_HOST={host} EMAIL_PORT={smtp_port} mailout send --to you@example.com "
            "--subject Hi --body Hello"
        )
        sys.stdout.flush()
        if wait:
            print("Serving until Ctrl-C.", flush=True)
            _wait_for_interrupt()
    finally:
        catcher.stop_thread()
    return 0


def _wait_for_interrupt() -> None:
    # The handler only appends to a list: it runs in this thread wherever the thread is, and
    # a lock it takes may be held by the code it interrupted (two SIGTERMs in a row, the
    # second inside the first's Event.set(), deadlocked the demo for good).
    stopped: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, _: stopped.append(signum))
    try:
        while not stopped:
            time.sleep(0.2)
    except KeyboardInterrupt:
        print()
    finally:
        signal.signal(signal.SIGTERM, previous)
