"""The catcher's JSON API: list, read, download, delete, wait for and stream caught messages.

Every error answers ``{"error": "..."}`` with 400 (bad parameter), 404 (no such message or
attachment) or 408 (``/api/wait`` timed out). Nothing here trusts the mail: header values and
file names reach the browser only as JSON strings or as RFC 6266 ``filename*`` parameters, and
the message HTML only through ``/api/messages/{id}/html`` under a script-less, remote-less CSP.

The event loop these run on also serves SMTP, so no endpoint does heavy work on it: store
queries run in a thread, messages are read (parsed) once in ``views.MessageViews``' workers,
and large JSON is encoded in a thread.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from mailout.catcher import parse
from mailout.catcher.events import EventHub, sse
from mailout.catcher.safe_http import (
    DOWNLOAD_CSP,
    HTML_CSP,
    HTML_CSP_REMOTE,
    content_disposition,
    media_type,
    rewrite_cids,
)
from mailout.catcher.store import MessageStore, Summary
from mailout.catcher.views import MessageViews

# EventHub (catcher.events) and the helpers of catcher.safe_http are imported from here too.
__all__ = ["EventHub", "content_disposition", "media_type", "rewrite_cids", "routes"]

MAX_LIMIT = 500
MAX_WAIT = 60.0  # seconds; /api/wait clamps longer timeouts to this
MAX_TEXT_PARAM = 1000  # characters in q, to, subject
HEARTBEAT = 15.0  # seconds between SSE comments, so proxies and browsers keep the stream open
# An SSE stream ends after this long and the browser reconnects (after `retry`). This bounds how
# long a server shutdown waits for open streams when nobody calls EventHub.close().
STREAM_LIFETIME = 30.0


class BadParameter(ValueError):
    """A query or path parameter that cannot be used; answered with 400."""


class NotFound(LookupError):
    """No such message, attachment or part; answered with 404."""


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


# -- parameters ----------------------------------------------------------------------------------


def _int(value: str | None, name: str, default: int, minimum: int, maximum: int) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(value, 10)
    except ValueError:
        raise BadParameter(f"{name} must be an integer, not {value[:40]!r}") from None
    if not minimum <= number <= maximum:
        raise BadParameter(f"{name} must be between {minimum} and {maximum}, not {number}")
    return number


def _text(request: Request, name: str) -> str | None:
    value = request.query_params.get(name)
    if value is None or not value.strip():
        return None
    if len(value) > MAX_TEXT_PARAM:
        raise BadParameter(f"{name} must be at most {MAX_TEXT_PARAM} characters")
    return value.strip()


def _message_id(request: Request) -> int:
    return _int(request.path_params["id"], "message id", 0, 1, 2**63 - 1)


async def _summary(store: MessageStore, message_id: int) -> Summary:
    summary = await asyncio.to_thread(store.get, message_id)
    if summary is None:
        raise NotFound(f"no message {message_id}")
    return summary


async def _parsed(views: MessageViews, message_id: int) -> parse.Parsed:
    parsed = await views.read(message_id)
    if parsed is None:
        raise NotFound(f"no message {message_id}")
    return parsed


def _dumps(data: object) -> bytes:
    # As JSONResponse encodes, in whatever thread calls it.
    return json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


async def _json(data: object) -> Response:
    """A JSON response encoded off the event loop (a message's bodies can be megabytes)."""
    return Response(await asyncio.to_thread(_dumps, data), media_type="application/json")


# -- representations -----------------------------------------------------------------------------


def iso_date(timestamp: float) -> str:
    """ISO 8601 in UTC with milliseconds: ``2026-11-28T10:46:03.120Z``."""
    moment = datetime.fromtimestamp(timestamp, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def summary_json(summary: Summary) -> dict[str, Any]:
    return {
        "id": summary.id,
        "from": summary.from_header or summary.mail_from,
        "to": list(summary.recipients),
        "subject": summary.subject,
        "date": iso_date(summary.received_at),
        "size": summary.size,
        "attachments": summary.attachments,
        "mail_from": summary.mail_from,
        "to_header": summary.to_header,
    }


def details_json(summary: Summary, found: parse.Details) -> dict[str, Any]:
    base = f"/api/messages/{summary.id}"
    return {
        **summary_json(summary),
        "envelope": {"mail_from": summary.mail_from, "recipients": list(summary.recipients)},
        "headers": [{"name": name, "value": value} for name, value in found.headers],
        "text": found.text,
        "html": found.html,
        "attachments": [
            {
                "index": info.index,
                "name": info.filename,
                "type": info.content_type,
                "size": info.size,
                "inline": info.inline,
                "content_id": info.content_id,
                "url": f"{base}/attachments/{info.index}",
            }
            for info in found.attachments
        ],
        "attachment_count": summary.attachments,
        "parts": found.parts,
        "notice": found.notice,
    }


# -- endpoints -----------------------------------------------------------------------------------


def routes(
    store: MessageStore, hub: EventHub, views: MessageViews, *, smtp_address: str = ""
) -> list[Route]:
    def handle(
        endpoint: Callable[[Request], Any],
    ) -> Callable[[Request], Any]:
        async def wrapped(request: Request) -> Response:
            try:
                response: Response = await endpoint(request)
            except BadParameter as exc:
                return error(400, str(exc))
            except NotFound as exc:
                return error(404, str(exc))
            return response

        return wrapped

    async def info(request: Request) -> Response:
        from mailout import __version__

        return JSONResponse({"smtp": smtp_address, "version": __version__})

    async def list_messages(request: Request) -> Response:
        limit = _int(request.query_params.get("limit"), "limit", 50, 0, MAX_LIMIT)
        offset = _int(request.query_params.get("offset"), "offset", 0, 0, 2**62)
        total, found = await asyncio.to_thread(
            store.list, to=_text(request, "to"), q=_text(request, "q"), limit=limit, offset=offset
        )
        return JSONResponse({"total": total, "messages": [summary_json(s) for s in found]})

    async def delete_all(request: Request) -> Response:
        return JSONResponse({"deleted": await asyncio.to_thread(store.clear)})

    async def get_message(request: Request) -> Response:
        message_id = _message_id(request)
        summary = await _summary(store, message_id)
        parsed = await _parsed(views, message_id)
        return await _json(details_json(summary, parsed.details))

    async def delete_message(request: Request) -> Response:
        message_id = _message_id(request)
        if not await asyncio.to_thread(store.delete, message_id):
            raise NotFound(f"no message {message_id}")
        return JSONResponse({"deleted": 1})

    async def raw(request: Request) -> Response:
        message_id = _message_id(request)
        data = await asyncio.to_thread(store.raw, message_id)
        if data is None:
            raise NotFound(f"no message {message_id}")
        disposition = "attachment" if request.query_params.get("download") else "inline"
        return Response(
            data,
            media_type="message/rfc822",
            headers={
                "Content-Disposition": f'{disposition}; filename="message-{message_id}.eml"',
                "Content-Security-Policy": DOWNLOAD_CSP,
            },
        )

    async def get_attachment(request: Request) -> Response:
        message_id = _message_id(request)
        index = _int(request.path_params["n"], "attachment number", 0, 0, 10**6)
        await _summary(store, message_id)
        parsed = await _parsed(views, message_id)
        found = await views.run(parsed.attachment, index)
        if found is None:
            raise NotFound(f"message {message_id} has no attachment {index}")
        content_type, filename, data = found
        # The type exactly as the part gives it: no charset is added to text/*, since these
        # are the part's bytes, not text we encoded.
        return Response(
            data,
            headers={
                "Content-Type": media_type(content_type),
                "Content-Disposition": content_disposition(
                    filename, f"message-{message_id}-attachment-{index}"
                ),
                "Content-Security-Policy": DOWNLOAD_CSP,
            },
        )

    async def by_cid(request: Request) -> Response:
        message_id = _message_id(request)
        cid = request.path_params["cid"]
        await _summary(store, message_id)
        parsed = await _parsed(views, message_id)
        found = await views.run(parsed.by_content_id, cid)
        if found is None:
            raise NotFound(f"message {message_id} has no part with Content-ID {cid[:80]!r}")
        content_type, data = found
        return Response(
            data,
            headers={
                "Content-Type": media_type(content_type),
                "Content-Security-Policy": DOWNLOAD_CSP,
                # The preview iframe is sandboxed into an opaque origin, so to the browser its
                # images are cross-origin loads; same-origin would block them.
                "Cross-Origin-Resource-Policy": "cross-origin",
            },
        )

    async def html(request: Request) -> Response:
        message_id = _message_id(request)
        await _summary(store, message_id)
        body = (await _parsed(views, message_id)).details.html
        if body is None:
            raise NotFound(f"message {message_id} has no HTML body")
        remote = request.query_params.get("remote") in {"1", "true", "yes"}
        return Response(
            await asyncio.to_thread(rewrite_cids, body, message_id),
            media_type="text/html",
            headers={
                "Content-Security-Policy": HTML_CSP_REMOTE if remote else HTML_CSP,
                "X-DNS-Prefetch-Control": "off",
            },
        )

    async def inboxes(request: Request) -> Response:
        total = await asyncio.to_thread(store.count)
        found = await asyncio.to_thread(store.inboxes)
        return JSONResponse(
            {"total": total, "inboxes": [{"address": a, "count": n} for a, n in found]}
        )

    def find(to: str | None, subject: str | None, q: str | None) -> Summary | None:
        """The newest message matching all given criteria (subject: a substring, any case)."""
        wanted = subject.casefold() if subject else None
        offset = 0
        while True:
            _, page = store.list(to=to, q=q or subject, limit=100, offset=offset)
            for summary in page:
                if wanted is None or wanted in summary.subject.casefold():
                    return summary
            if len(page) < 100:
                return None
            offset += 100

    async def wait(request: Request) -> Response:
        to, subject, q = _text(request, "to"), _text(request, "subject"), _text(request, "q")
        value = request.query_params.get("timeout") or "5"
        try:
            timeout = float(value)
        except ValueError:
            raise BadParameter(f"timeout must be a number of seconds, not {value[:40]!r}") from None
        if not timeout >= 0:  # also refuses nan
            raise BadParameter(f"timeout must be 0 or more seconds, not {value[:40]!r}")
        timeout = min(timeout, MAX_WAIT)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        queue = hub.listen()  # before the first look, so nothing added in between is missed
        try:
            while True:
                found = await asyncio.to_thread(find, to, subject, q)
                if found is not None:
                    parsed = await _parsed(views, found.id)
                    return await _json(details_json(found, parsed.details))
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    event = await asyncio.wait_for(queue.get(), remaining)
                except TimeoutError:
                    break
                if event is None:
                    return error(503, "the server is shutting down")
                while not queue.empty():  # one look for a burst of arrivals
                    if queue.get_nowait() is None:
                        return error(503, "the server is shutting down")
        finally:
            hub.forget(queue)
        return error(408, f"no matching message arrived within {timeout:g} s")

    async def events(request: Request) -> Response:
        queue = hub.listen()

        async def stream() -> AsyncIterator[str]:
            loop = asyncio.get_running_loop()
            end = loop.time() + STREAM_LIFETIME
            try:
                total = await asyncio.to_thread(store.count)
                yield "retry: 1000\n\n" + sse("hello", {"total": total})
                while (remaining := end - loop.time()) > 0:
                    try:
                        event = await asyncio.wait_for(queue.get(), min(HEARTBEAT, remaining))
                    except TimeoutError:
                        yield ": keep-alive\n\n"
                        continue
                    if event is None:
                        return
                    data: dict[str, Any] = {"kind": event.kind, "id": event.id}
                    if event.kind == "added" and event.id is not None:
                        summary = await asyncio.to_thread(store.get, event.id)
                        data["message"] = summary_json(summary) if summary else None
                    yield sse(event.kind, data)
            finally:
                hub.forget(queue)

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return [
        Route("/api/info", handle(info), methods=["GET"]),
        Route("/api/messages", handle(list_messages), methods=["GET"]),
        Route("/api/messages", handle(delete_all), methods=["DELETE"]),
        Route("/api/messages/{id}", handle(get_message), methods=["GET"]),
        Route("/api/messages/{id}", handle(delete_message), methods=["DELETE"]),
        Route("/api/messages/{id}/raw", handle(raw), methods=["GET"]),
        Route("/api/messages/{id}/html", handle(html), methods=["GET"]),
        Route("/api/messages/{id}/attachments/{n}", handle(get_attachment), methods=["GET"]),
        Route("/api/messages/{id}/cid/{cid:path}", handle(by_cid), methods=["GET"]),
        Route("/api/inboxes", handle(inboxes), methods=["GET"]),
        Route("/api/wait", handle(wait), methods=["GET"]),
        Route("/api/events", handle(events), methods=["GET"]),
    ]
