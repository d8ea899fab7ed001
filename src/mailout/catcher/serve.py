"""``mailout serve`` in the foreground: serve until SIGINT or SIGTERM, report each message.

Every report is safe for a terminal: whatever comes from the mail goes through
``terminal.printable``.
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, Literal

from mailout.catcher.addresses import format_address
from mailout.catcher.store import StoreEvent, Summary
from mailout.catcher.terminal import printable
from mailout.utils import is_loopback

if TYPE_CHECKING:
    from mailout.catcher.server import Catcher

__all__ = ["describe", "render", "run", "summarize"]


def describe(summary: Summary) -> str:
    """One line about a caught message (``mailout serve --quiet``), safe for a terminal."""
    to = printable(", ".join(summary.recipients))
    extra = f", {summary.attachments} attachment(s)" if summary.attachments else ""
    return (
        f"#{summary.id} from <{printable(summary.mail_from)}> to {to}: "
        f"{printable(repr(summary.subject))} ({summary.size} bytes{extra})"
    )


def summarize(summary: Summary) -> str:
    """The default two or three lines about a caught message, safe for a terminal."""
    text = describe(summary) + f"\n    Subject: {printable(summary.subject)}"
    if summary.from_header:
        text += f"\n    From: {printable(summary.from_header)}"
    return text


def render(summary: Summary, raw: bytes) -> str:
    """A message as the old DebuggingServer showed it, decoded: headers, body, attachments.

    Everything taken from the message goes through ``terminal.printable``: this is printed.
    """
    from mailout.catcher import parse

    info = parse.details(raw)
    recipients = ", ".join(f"<{r}>" for r in summary.recipients)
    lines = [f"---------- MESSAGE #{summary.id} FOLLOWS ----------"]
    lines.append(f"X-Envelope-From: <{printable(summary.mail_from)}>")
    lines.append(f"X-Envelope-To: {printable(recipients)}")
    lines += [f"{printable(name)}: {printable(value)}" for name, value in info.headers]
    lines.append("")
    if info.notice is not None:
        lines.append(f"[{printable(info.notice)}]")
    elif info.text is not None:
        lines.append(printable(info.text.rstrip("\n"), newlines=True))
    elif info.html is not None:
        lines.append("[HTML only]")
        lines.append(printable(info.html.rstrip("\n"), newlines=True))
    for item in info.attachments:
        kind = "inline" if item.inline else "attachment"
        name = printable(item.filename or "(no name)")
        content_type = printable(item.content_type)
        lines.append(f"[{kind} {item.index}: {name}, {content_type}, {item.size} bytes]")
    lines.append("------------ END MESSAGE ------------")
    return "\n".join(lines)


def run(catcher: Catcher, *, output: Literal["print", "quiet", "summary"] = "summary") -> int:
    """Serve until SIGINT or SIGTERM, reporting each message on standard output; return 0."""
    import signal
    import sys

    lock = threading.Lock()
    store = catcher.store

    def report(event: StoreEvent) -> None:
        if event.kind != "added" or event.id is None:
            return
        summary = store.get(event.id)
        if summary is None:
            return
        if output == "print":
            raw = store.raw(event.id) or b""
            text = render(summary, raw)
        elif output == "quiet":
            text = describe(summary)
        else:
            text = summarize(summary)
        with lock:
            print(text, flush=True)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await catcher.start()
        unsubscribe = store.subscribe(report)
        try:
            assert catcher.smtp_address is not None
            print(f"SMTP listening on {format_address(catcher.smtp_address)}", flush=True)
            if catcher.smtps_address is not None:
                print(f"SMTPS listening on {format_address(catcher.smtps_address)}", flush=True)
            if catcher.http_url is not None:
                print(f"Web inbox on {catcher.http_url}", flush=True)
                if catcher.http_address and not is_loopback(catcher.http_address[0]):
                    print(
                        f"warning: the web inbox listens on {catcher.http_address[0]}, not "
                        "loopback: anyone who can reach this machine can read and delete "
                        "the caught mail",
                        file=sys.stderr,
                        flush=True,
                    )
            if catcher.cert_path is not None:
                print(f"TLS certificate (self-signed): {catcher.cert_path}", file=sys.stderr)
            await stop.wait()
        finally:
            unsubscribe()
            await catcher.stop()

    asyncio.run(main())
    return 0
