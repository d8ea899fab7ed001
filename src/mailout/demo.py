"""``mailout demo``: send a realistic message to a throwaway local SMTP server and show it."""

from __future__ import annotations

import email
import email.policy
import socket
import sys
from typing import Any

import mailout
from mailout.backends.smtp import EmailBackend as SMTPBackend

PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj 2 0 obj<</Type/Pages/Kids[3 0 R]"
    b"/Count 1>>endobj 3 0 obj<</Type/Page/MediaBox[0 0 200 100]/Parent 2 0 R>>endobj\n"
    b"trailer<</Root 1 0 R>>\n%%EOF\n"
)


def _require_aiosmtpd() -> Any:
    try:
        from aiosmtpd.controller import Controller
    except ImportError:
        raise SystemExit(
            'mailout demo needs the server extra: pip install "mailout[server]"'
        ) from None
    return Controller


def _free_port() -> int:
    # aiosmtpd's Controller cannot listen on port 0 itself (it probes the port it was given).
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run_demo(port: int = 0) -> int:
    controller_class = _require_aiosmtpd()
    port = port or _free_port()

    class Keep:
        def __init__(self) -> None:
            self.envelopes: list[Any] = []

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            self.envelopes.append(envelope)
            return "250 2.0.0 Message accepted"

    handler = Keep()
    controller = controller_class(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        real_port = port
        print(f"SMTP server listening on 127.0.0.1:{real_port}")
        message = mailout.EmailMultiAlternatives(
            subject="Your invoice from mailout ☕",
            body="Hello Ana,\n\nYour invoice is attached.\n\n— The mailout team\n",
            from_email="mailout demo <demo@example.com>",
            to=["Ana Lima <ana@example.com>"],
            bcc=["audit@example.com"],
            reply_to=["billing@example.com"],
        )
        message.attach_alternative(
            "<p>Hello Ana,</p><p>Your invoice is <strong>attached</strong>.</p>", "text/html"
        )
        message.attach("invoice.pdf", PDF, "application/pdf")
        backend = SMTPBackend(host="127.0.0.1", port=real_port, use_tls=False, use_ssl=False)
        sent = backend.send_messages([message])
        print(f"sent {sent} message through mailout's SMTP backend\n")
        for envelope in handler.envelopes:
            print(
                f"envelope: MAIL FROM {envelope.mail_from}  RCPT TO {', '.join(envelope.rcpt_tos)}"
            )
            parsed = email.message_from_bytes(
                envelope.original_content, policy=email.policy.default
            )
            for name in ("From", "To", "Reply-To", "Subject", "Date", "Message-ID"):
                print(f"  {name}: {parsed[name]}")
            print("  parts:")
            for part in parsed.walk():
                filename = part.get_filename()
                print(f"    {part.get_content_type()}" + (f"  ({filename})" if filename else ""))
        print(
            "\nBcc went in the envelope only. Send your own with, for example:\n"
            "  EMAIL_URL=console: mailout send --to you@example.com --subject Hi --body Hello"
        )
    finally:
        controller.stop()
    sys.stdout.flush()
    return 0
