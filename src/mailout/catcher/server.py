"""``Catcher``: the SMTP listener(s) and the web inbox, served together in one asyncio loop.

    store = MessageStore()
    async with Catcher(store, smtp=("127.0.0.1", 0), http=("127.0.0.1", 0)) as catcher:
        print(catcher.smtp_address, catcher.http_url)
        ...

or, from synchronous code (tests, the demo), in a background thread::

    with Catcher(store, smtp=("127.0.0.1", 0), http=None).running() as catcher:
        ...

Needs the ``server`` extra (aiosmtpd; starlette and uvicorn for the web inbox).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import socket
import ssl
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from mailout.catcher.addresses import format_address, parse_address
from mailout.catcher.serve import describe, render, run, summarize
from mailout.catcher.store import MessageStore
from mailout.utils import is_loopback

if TYPE_CHECKING:
    from mailout.catcher.smtp import CatcherHandler, CatcherSMTP
    from mailout.catcher.views import MessageViews

# HOST:PORT (catcher.addresses) and `mailout serve`'s loop and reports (catcher.serve) are
# imported from here too.
__all__ = [
    "DEFAULT_HTTP",
    "DEFAULT_SMTP",
    "Catcher",
    "describe",
    "format_address",
    "is_loopback",
    "parse_address",
    "render",
    "require_extra",
    "run",
    "summarize",
    "web_available",
]

DEFAULT_SMTP = ("127.0.0.1", 1025)
DEFAULT_HTTP = ("127.0.0.1", 8025)
EXTRA_ADVICE = 'the mail catcher needs the server extra: pip install "mailout[server]"'


def require_extra(*modules: str) -> None:
    """Raise ``ImportError`` with install advice if a module of the server extra is missing."""
    for name in modules or ("aiosmtpd",):
        if importlib.util.find_spec(name) is None:
            raise ImportError(f"{EXTRA_ADVICE} ({name} is not installed)")


def web_available() -> bool:
    """Whether the web inbox (``mailout.catcher.web`` and its libraries) can be served."""
    return all(
        importlib.util.find_spec(name) is not None
        for name in ("starlette", "uvicorn", "mailout.catcher.web")
    )


class Catcher:
    """A running mail catcher: SMTP (plus optional SMTPS) and the web inbox over one store."""

    def __init__(
        self,
        store: MessageStore | None = None,
        *,
        smtp: tuple[str, int] = DEFAULT_SMTP,
        http: tuple[str, int] | None = DEFAULT_HTTP,
        smtps: tuple[str, int] | None = None,
        max_size: int | None = None,
        starttls: bool = False,
        tls_cert: str | Path | None = None,
        tls_key: str | Path | None = None,
        tls_cert_dir: Path | None = None,
        auth: Literal["any"] | Mapping[str, str] | None = None,
        hostname: str | None = None,
    ) -> None:
        require_extra("aiosmtpd")
        if http is not None:
            require_extra("starlette", "uvicorn")
        if (tls_cert is None) != (tls_key is None):
            raise ValueError("tls_cert and tls_key go together")
        from mailout.catcher.smtp import DEFAULT_MAX_SIZE

        self.store = store if store is not None else MessageStore()
        self._owns_store = store is None
        self.smtp_bind = smtp
        self.http_bind = http
        self.smtps_bind = smtps
        self.max_size = DEFAULT_MAX_SIZE if max_size is None else max_size
        self.starttls = starttls or tls_cert is not None
        self.tls_cert = tls_cert
        self.tls_key = tls_key
        self.tls_cert_dir = tls_cert_dir
        self.auth = auth
        self.hostname = hostname
        self.smtp_address: tuple[str, int] | None = None
        self.smtps_address: tuple[str, int] | None = None
        self.http_address: tuple[str, int] | None = None
        self.cert_path: Path | None = None
        self._servers: list[asyncio.Server] = []
        self._connections: set[CatcherSMTP] = set()
        self._handler: CatcherHandler | None = None
        self._views: MessageViews | None = None
        self._web: Any = None
        self._web_task: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None

    @property
    def http_url(self) -> str | None:
        if self.http_address is None:
            return None
        return f"http://{format_address(self.http_address)}/"

    @property
    def smtp_port(self) -> int:
        if self.smtp_address is None:
            raise RuntimeError("the catcher is not running")
        return self.smtp_address[1]

    # -- asyncio -------------------------------------------------------------------------------

    async def start(self) -> None:
        from mailout.catcher.smtp import smtp_factory

        loop = asyncio.get_running_loop()
        context = self._tls_context() if (self.starttls or self.smtps_bind) else None
        users = None if self.auth in (None, "any") else dict(self.auth)  # type: ignore[arg-type]
        if self.http_bind is not None:
            from mailout.catcher.views import MessageViews

            # Shared by the SMTP side (which reads each message as it stores it) and the web
            # inbox (which shows them), so that a message is read once.
            self._views = MessageViews(self.store)
        common: dict[str, Any] = {
            "hostname": self.hostname,
            "max_size": self.max_size or None,
            "users": users,
            "auth_any": self.auth == "any",
            "connections": self._connections,
            "views": self._views,
        }
        try:
            handler, factory = smtp_factory(
                self.store, tls_context=context if self.starttls else None, **common
            )
            self._handler = handler
            server = await loop.create_server(factory, *self.smtp_bind)
            self._servers.append(server)
            self.smtp_address = _bound(server)
            if self.smtps_bind is not None:
                assert context is not None
                _, tls_factory = smtp_factory(
                    self.store, tls_context=context, implicit_tls=True, **common
                )
                # One handler for both: its pending-store set is what a shutdown waits for.
                tls_server = await loop.create_server(
                    _sharing(tls_factory, handler), *self.smtps_bind, ssl=context
                )
                self._servers.append(tls_server)
                self.smtps_address = _bound(tls_server)
            if self.http_bind is not None:
                await self._start_web()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop listening, let messages being stored finish, close connections and the web app."""
        for server in self._servers:
            server.close()
        if self._handler is not None:
            await self._handler.drain()
        for connection in list(self._connections):
            transport = connection.transport
            if transport is not None and not transport.is_closing():
                with contextlib.suppress(Exception):
                    transport.write(b"421 4.3.2 mailout catcher shutting down\r\n")  # type: ignore[attr-defined]
                transport.close()
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 5)
        self._servers.clear()
        if self._web is not None:
            events = getattr(getattr(self._web.config.app, "state", None), "events", None)
            if events is not None:  # ends the open event streams now, not at their time-out
                with contextlib.suppress(Exception):
                    events.close()
            self._web.should_exit = True
        if self._web_task is not None:
            with contextlib.suppress(BaseException):
                await self._web_task
        self._web = self._web_task = None
        if self._handler is not None:
            await self._handler.drain()
        if self._views is not None:
            self._views.close()
            self._views = None
        if self._owns_store:
            self.store.close()

    async def __aenter__(self) -> Catcher:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def serve(self, stop: asyncio.Event) -> None:
        """Start, serve until ``stop`` is set, then stop."""
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()

    # -- in a background thread ----------------------------------------------------------------

    def start_in_thread(self, timeout: float = 10) -> None:
        """Run the catcher in a daemon thread with its own loop; return once it listens."""
        if self._thread is not None:
            raise RuntimeError("the catcher is already running")
        ready = threading.Event()
        failure: list[BaseException] = []

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            try:
                await self.start()
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                return
            ready.set()
            try:
                await self._stop.wait()
            finally:
                await self.stop()

        self._thread = threading.Thread(
            target=asyncio.run, args=(main(),), name="mailout-catcher", daemon=True
        )
        self._thread.start()
        if not ready.wait(timeout):
            raise TimeoutError("the mail catcher did not start in time")
        if failure:
            self._thread.join()
            self._thread = None
            raise failure[0]

    def stop_thread(self, timeout: float = 15) -> None:
        thread, loop, stop = self._thread, self._loop, self._stop
        if thread is None or loop is None or stop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop already ended
            loop.call_soon_threadsafe(stop.set)
        thread.join(timeout)
        self._thread = None

    @contextlib.contextmanager
    def running(self) -> Iterator[Catcher]:
        self.start_in_thread()
        try:
            yield self
        finally:
            self.stop_thread()

    # -- internals -----------------------------------------------------------------------------

    def _tls_context(self) -> ssl.SSLContext:
        from mailout.catcher.tls import ensure_self_signed, server_context

        if self.tls_cert is not None and self.tls_key is not None:
            return server_context(self.tls_cert, self.tls_key)
        cert, key = ensure_self_signed(self.tls_cert_dir)
        self.cert_path = cert
        return server_context(cert, key)

    async def _start_web(self) -> None:
        import uvicorn

        from mailout.catcher.web import LOOPBACK_HOSTS, create_app

        assert self.http_bind is not None
        assert self.smtp_address is not None
        host, port = self.http_bind
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.create_server((host, port), family=family)
        self.http_address = (host, int(sock.getsockname()[1]))
        # On loopback, answer only loopback Host names: a web page cannot then read the inbox
        # through DNS rebinding. Bound elsewhere (Docker, a LAN), the user chose to be reached.
        hosts = LOOPBACK_HOSTS if is_loopback(host) else None
        app = create_app(
            self.store,
            smtp_address=format_address(self.smtp_address),
            allowed_hosts=hosts,
            views=self._views,
        )
        config = uvicorn.Config(
            app,
            log_config=None,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=1,
        )
        self._web = uvicorn.Server(config)
        # _serve, not serve(): serve() takes over SIGINT/SIGTERM, which belong to `mailout serve`.
        self._web_task = asyncio.create_task(self._web._serve(sockets=[sock]))
        while not self._web.started:
            if self._web_task.done():
                self._web_task.result()  # raises what failed
                raise RuntimeError("the web inbox stopped during start-up")
            await asyncio.sleep(0.01)


def _bound(server: asyncio.Server) -> tuple[str, int]:
    name = server.sockets[0].getsockname()
    return str(name[0]), int(name[1])


def _sharing(factory: Any, handler: CatcherHandler) -> Any:
    def make() -> Any:
        protocol = factory()
        protocol.event_handler = handler
        protocol._handle_hooks = {"DATA": handler.handle_DATA}
        return protocol

    return make
