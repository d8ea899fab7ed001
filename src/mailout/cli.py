"""The ``mailout`` command: send a message, show the settings, catch mail, run the demo."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import mailout
from mailout.conf import settings
from mailout.exceptions import MailoutError

__all__ = ["EPILOG", "build_parser", "main"]

EPILOG = """\
settings come from environment variables with Django's names (EMAIL_HOST, EMAIL_PORT,
EMAIL_BACKEND, DEFAULT_FROM_EMAIL, ...) or one EMAIL_URL such as
smtp://user:pass@smtp.example.com:587?tls=starttls, console:, file:///tmp/mail.
"""


def build_parser(*, prog: str = "mailout", epilog: str = EPILOG) -> argparse.ArgumentParser:
    """The whole command line; ``manage.py mailout`` (mailout.django) uses it with its own
    ``prog`` and ``epilog``, so every command here is also a Django management command."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Send email the Django way, from any Python program or the shell.",
        epilog=epilog,
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
    serve = commands.add_parser(
        "serve",
        help="run a local mail catcher: SMTP in, web inbox and JSON API out",
        description="Accept every message sent to the SMTP port and keep it (in memory, or in "
        "a SQLite file with --db), filed under each envelope recipient; browse it in the web "
        "inbox. Port 0 picks a free port; one line per listener gives the real address. "
        'SIGINT/SIGTERM stop it cleanly. Needs: pip install "mailout[server]"',
    )
    serve.add_argument(
        "--smtp", default="127.0.0.1:1025", metavar="HOST:PORT", help="(default: %(default)s)"
    )
    serve.add_argument(
        "--http",
        default="127.0.0.1:8025",
        metavar="HOST:PORT",
        help="web inbox (default: %(default)s; 'off' for none)",
    )
    serve.add_argument("--db", default=":memory:", metavar="FILE", help="(default: %(default)s)")
    serve.add_argument(
        "--max-size",
        type=int,
        default=50 * 1024 * 1024,
        metavar="BYTES",
        help="largest message accepted (default: %(default)s; 0: no limit)",
    )
    serve.add_argument("--max-messages", type=int, metavar="N", help="keep only the newest N")
    serve.add_argument(
        "--max-age", type=float, metavar="SECONDS", help="delete messages older than this"
    )
    serve.add_argument(
        "--starttls",
        action="store_true",
        help="offer STARTTLS (with --tls-cert/--tls-key, or a self-signed certificate)",
    )
    serve.add_argument("--tls-cert", metavar="FILE", help="PEM certificate (implies --starttls)")
    serve.add_argument("--tls-key", metavar="FILE", help="PEM private key")
    serve.add_argument("--smtps", metavar="HOST:PORT", help="also listen with implicit TLS")
    serve.add_argument(
        "--auth",
        metavar="any|FILE",
        help="require AUTH: accept any credentials, or those in FILE (user:password lines)",
    )
    output = serve.add_mutually_exclusive_group()
    output.add_argument(
        "--print", dest="output", action="store_const", const="print", help="print each message"
    )
    output.add_argument(
        "--quiet",
        dest="output",
        action="store_const",
        const="quiet",
        help="one line per message",
    )
    from mailout.queue.cli import add_parser as add_queue_parser

    add_queue_parser(commands)
    demo = commands.add_parser(
        "demo",
        help="start the mail catcher, send it a sample message, show the web inbox",
        description="Start the mail catcher (SMTP and web inbox) on free ports of 127.0.0.1, "
        "send it a realistic message (text, HTML, an inline image, a PDF) through mailout's "
        "SMTP backend, print what arrived and the inbox URL, and keep serving until Ctrl-C.",
    )
    demo.add_argument("--port", type=int, default=0, help="SMTP port (default: a free one)")
    demo.add_argument(
        "--no-wait",
        action="store_true",
        help="exit once the message is sent and shown, instead of serving until Ctrl-C",
    )
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


def _serve(args: argparse.Namespace) -> int:
    try:
        from mailout.catcher.server import Catcher, parse_address, run
        from mailout.catcher.smtp import load_users
        from mailout.catcher.store import MessageStore
    except ImportError as exc:
        missing = (exc.name or "").partition(".")[0]
        if missing in ("aiosmtpd", "starlette", "uvicorn"):
            raise SystemExit(
                'mailout serve needs the server extra: pip install "mailout[server]" '
                f"({missing} is not installed)"
            ) from None
        raise SystemExit(f"mailout serve: {exc}") from None
    try:
        smtp = parse_address(args.smtp)
        http = None if args.http.lower() in ("off", "none", "") else parse_address(args.http)
        smtps = parse_address(args.smtps) if args.smtps else None
    except ValueError as exc:
        raise SystemExit(f"mailout serve: {exc}") from None
    if (args.tls_cert is None) != (args.tls_key is None):
        raise SystemExit("mailout serve: --tls-cert and --tls-key go together")
    if args.max_size < 0:
        raise SystemExit("mailout serve: --max-size must not be negative")
    auth: Any = None
    if args.auth == "any":
        auth = "any"
    elif args.auth:
        try:
            auth = load_users(args.auth)
        except ValueError as exc:
            raise SystemExit(f"mailout serve: --auth: {exc}") from None
    try:
        store = MessageStore(args.db, max_messages=args.max_messages, max_age=args.max_age)
    except ValueError as exc:
        raise SystemExit(f"mailout serve: {exc}") from None
    try:
        catcher = Catcher(
            store,
            smtp=smtp,
            http=http,
            smtps=smtps,
            max_size=args.max_size,
            starttls=args.starttls,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            auth=auth,
        )
    except ImportError as exc:
        store.close()
        raise SystemExit(f"mailout serve: {exc}") from None
    try:
        return run(catcher, output=args.output or "summary")
    except RuntimeError as exc:  # e.g. no certificate and no way to make one
        raise SystemExit(f"mailout serve: {exc}") from None
    finally:
        store.close()


def main(argv: Sequence[str] | None = None, *, prog: str = "mailout", epilog: str = EPILOG) -> int:
    args = build_parser(prog=prog, epilog=epilog).parse_args(argv)
    try:
        if args.command == "send":
            return _send(args)
        if args.command == "config":
            return _config()
        if args.command == "serve":
            return _serve(args)
        if args.command == "queue":
            from mailout.queue.cli import run as run_queue

            return run_queue(args)
        if args.command == "demo":
            from mailout.demo import run_demo

            return run_demo(port=args.port, wait=not args.no_wait)
    except (MailoutError, OSError) as exc:
        print(f"mailout {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
