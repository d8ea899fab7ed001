"""The ``mailout`` command: send a message, show the settings, run the demo."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import mailout
from mailout.conf import settings
from mailout.exceptions import MailoutError

__all__ = ["main"]

EPILOG = """\
settings come from environment variables with Django's names (EMAIL_HOST, EMAIL_PORT,
EMAIL_BACKEND, DEFAULT_FROM_EMAIL, ...) or one EMAIL_URL such as
smtp://user:pass@smtp.example.com:587?tls=starttls, console:, file:///tmp/mail.
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mailout",
        description="Send email the Django way, from any Python program or the shell.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"mailout {mailout.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    send = commands.add_parser(
        "send",
        help="send one message with the configured backend",
        description="Send one message with the configured backend. The body is read from "
        "standard input when --body is not given.",
    )
    send.add_argument(
        "--to", action="append", required=True, metavar="ADDR", help="recipient (repeatable)"
    )
    send.add_argument("--subject", required=True)
    send.add_argument("--body", help="plain-text body (default: read standard input)")
    send.add_argument(
        "--from", dest="from_email", metavar="ADDR", help="default: DEFAULT_FROM_EMAIL"
    )
    send.add_argument("--cc", action="append", default=[], metavar="ADDR", help="(repeatable)")
    send.add_argument("--bcc", action="append", default=[], metavar="ADDR", help="(repeatable)")
    send.add_argument(
        "--reply-to", action="append", default=[], metavar="ADDR", help="(repeatable)"
    )
    send.add_argument("--html", type=Path, metavar="FILE", help="HTML alternative read from FILE")
    send.add_argument(
        "--attach", action="append", default=[], type=Path, metavar="FILE", help="(repeatable)"
    )
    send.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="NAME:VALUE",
        help="extra header (repeatable)",
    )

    commands.add_parser(
        "config",
        help="print the effective settings (password masked)",
        description="Print every setting mailout would use now, and where it came from.",
    )
    demo = commands.add_parser(
        "demo",
        help="send a sample message to a throwaway local SMTP server and show it",
        description="Start a throwaway SMTP server on 127.0.0.1, send a message with an "
        "attachment through mailout's SMTP backend, and print what the server received.",
    )
    demo.add_argument("--port", type=int, default=0, help="SMTP port (default: a free one)")
    return parser


def _send(args: argparse.Namespace) -> int:
    body = args.body if args.body is not None else sys.stdin.read()
    headers = {}
    for item in args.header:
        name, sep, value = item.partition(":")
        if not sep:
            raise SystemExit(f"mailout send: --header {item!r} is not NAME:VALUE")
        headers[name.strip()] = value.strip()
    message = mailout.EmailMultiAlternatives(
        args.subject,
        body,
        args.from_email,
        args.to,
        bcc=args.bcc,
        cc=args.cc,
        reply_to=args.reply_to,
        headers=headers,
    )
    if args.html:
        message.attach_alternative(args.html.read_text(encoding="utf-8"), "text/html")
    for path in args.attach:
        message.attach_file(path)
    sent = message.send()
    print(f"sent {sent} message to {len(message.recipients())} recipient(s)", file=sys.stderr)
    return 0 if sent else 1


def _config() -> int:
    values = settings.as_dict(mask_secrets=True)
    width = max(map(len, values))
    for name, value in values.items():
        print(f"{name.ljust(width)}  {value!r}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "send":
            return _send(args)
        if args.command == "config":
            return _config()
        if args.command == "demo":
            from mailout.demo import run_demo

            return run_demo(port=args.port)
    except (MailoutError, OSError) as exc:
        print(f"mailout {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
