"""A catcher on loopback answers only loopback Host names (no DNS-rebinding reads)."""

from __future__ import annotations

import httpx
import pytest

from mailout.catcher.server import Catcher


@pytest.fixture
def catcher() -> Catcher:
    instance = Catcher(smtp=("127.0.0.1", 0), http=("127.0.0.1", 0))
    instance.start_in_thread()
    yield instance  # type: ignore[misc]
    instance.stop_thread()


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "inbox.localhost"])
def test_loopback_names_are_answered(catcher: Catcher, host: str) -> None:
    port = catcher.http_address[1]  # type: ignore[index]
    response = httpx.get(
        f"http://127.0.0.1:{port}/api/messages", headers={"Host": f"{host}:{port}"}
    )
    assert response.status_code == 200
    assert response.json()["total"] == 0


def test_other_names_are_refused(catcher: Catcher) -> None:
    port = catcher.http_address[1]  # type: ignore[index]
    response = httpx.get(
        f"http://127.0.0.1:{port}/api/messages", headers={"Host": "attacker.example"}
    )
    assert response.status_code == 421  # RFC 9110 §15.5.20: Misdirected Request
