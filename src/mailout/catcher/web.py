"""The catcher's web inbox: one page, its static files and the JSON API, as a Starlette app.

Only imported when serving (``import mailout`` never imports Starlette). Every response carries
``nosniff``, ``no-referrer`` and a Content-Security-Policy; the page's own CSP allows scripts,
styles and connections from this origin only, and frames only from it (the sandboxed HTML
preview), so nothing a caught message contains can run or call out.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mailout.catcher.api import EventHub, error, routes
from mailout.catcher.store import MessageStore
from mailout.catcher.views import MessageViews

__all__ = ["LOOPBACK_HOSTS", "create_app"]

# Host names a browser uses for a server on loopback. Answering only these defeats DNS
# rebinding: a web page whose own name is made to resolve to 127.0.0.1 cannot read the inbox.
LOOPBACK_HOSTS = ("localhost", "*.localhost", "127.0.0.1", "::1")

PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
# For anything that did not set its own: JSON, errors. Never a document that can do anything.
DEFAULT_CSP = "default-src 'none'; frame-ancestors 'none'; sandbox"

STATIC_TYPES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}


def host_name(value: str) -> str:
    """The name in a Host header, without the port: ``[::1]:8025`` → ``::1``."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        return value[1:end] if end > 0 else value
    name = value.rpartition(":")[0] if value.count(":") == 1 else value
    return name.rstrip(".")  # "localhost." is the same name, fully qualified


def host_allowed(host: str, allowed: Iterable[str]) -> bool:
    for pattern in allowed:
        if pattern.startswith("*.") and host.endswith(pattern[1:]):
            return True
        if host == pattern:
            return True
    return False


class SecurityHeaders:
    """Adds the headers every response must carry, unless the endpoint chose its own.

    With ``allowed_hosts``, a request for any other Host is answered 421 and goes no further.
    """

    def __init__(self, app: ASGIApp, allowed_hosts: tuple[str, ...] | None = None) -> None:
        self.app = app
        self.allowed_hosts = allowed_hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.allowed_hosts is not None:
            host = host_name(Headers(scope=scope).get("host", ""))
            if not host_allowed(host, self.allowed_hosts):
                # RFC 9110 §15.5.20: 421 Misdirected Request, "not configured to respond" here.
                response = PlainTextResponse(
                    "This mail catcher does not answer for that host name.",
                    status_code=421,
                    headers={
                        "X-Content-Type-Options": "nosniff",
                        "Content-Security-Policy": DEFAULT_CSP,
                    },
                )
                await response(scope, receive, send)
                return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "no-referrer")
                headers.setdefault("Content-Security-Policy", DEFAULT_CSP)
                headers.setdefault("Cross-Origin-Resource-Policy", "same-origin")
                headers.setdefault("Cache-Control", "no-store")
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _static_files() -> dict[str, bytes]:
    folder = importlib.resources.files("mailout.catcher") / "static"
    return {name: (folder / name).read_bytes() for name in STATIC_TYPES}


def create_app(
    store: MessageStore,
    *,
    smtp_address: str = "",
    allowed_hosts: Iterable[str] | None = None,
    views: MessageViews | None = None,
) -> Starlette:
    """The web inbox and JSON API over ``store``.

    ``allowed_hosts`` limits the Host names answered (``"*.example"`` matches subdomains);
    ``None`` answers any. Pass :data:`LOOPBACK_HOSTS` when serving on loopback.

    ``app.state.events`` is the :class:`EventHub` behind ``/api/events`` and ``/api/wait``;
    call ``app.state.events.close()`` before stopping the server so open streams end at once
    (otherwise each ends within ``api.STREAM_LIFETIME`` seconds). ``app.state.views`` (``views``,
    or a new one) reads messages in worker threads; it is closed when the app's lifespan ends.
    """
    files = _static_files()
    hub = EventHub(store)
    views = views if views is not None else MessageViews(store)

    async def page(request: Request) -> Response:
        return Response(
            files["index.html"],
            headers={
                "Content-Type": STATIC_TYPES["index.html"],
                "Content-Security-Policy": PAGE_CSP,
            },
        )

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC_TYPES or name == "index.html":
            return PlainTextResponse("Not Found", status_code=404)
        return Response(
            files[name], headers={"Content-Type": STATIC_TYPES[name], "Cache-Control": "no-cache"}
        )

    async def favicon(request: Request) -> Response:
        return Response(files["favicon.svg"], headers={"Content-Type": STATIC_TYPES["favicon.svg"]})

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        detail = exc.detail if isinstance(exc, HTTPException) else "Internal Server Error"
        if request.url.path.startswith("/api/"):
            return error(status, detail)
        return PlainTextResponse(detail, status_code=status)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        hub.close()
        views.close()

    app = Starlette(
        routes=[
            Route("/", page, methods=["GET"]),
            Route("/static/{name}", static, methods=["GET"]),
            Route("/favicon.ico", favicon, methods=["GET"]),
            *routes(store, hub, views, smtp_address=smtp_address),
        ],
        exception_handlers={HTTPException: http_error},
        lifespan=lifespan,
    )
    app.add_middleware(
        SecurityHeaders,
        allowed_hosts=None if allowed_hosts is None else tuple(h.lower() for h in allowed_hosts),
    )
    app.state.events = hub
    app.state.views = views
    app.state.store = store
    return app
