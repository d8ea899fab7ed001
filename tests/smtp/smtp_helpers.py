"""Helpers shared by the SMTP client tests (a module of its own: ``conftest`` is not unique)."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from mailout.smtp import SMTPClient


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SyncAsAsync:
    """Gives the sync client the async client's shape, so one scenario tests both drivers."""

    def __init__(self, client: SMTPClient) -> None:
        self.client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    async def connect(self) -> None:
        self.client.connect()

    async def send(self, *args: Any) -> Any:
        return self.client.send(*args)

    async def send_many(self, *args: Any) -> Any:
        return self.client.send_many(*args)

    async def aclose(self) -> None:
        self.client.close()

    async def __aenter__(self) -> SyncAsAsync:
        self.client.__enter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.client.__exit__(None, None, None)


MakeClient = Callable[..., Any]
