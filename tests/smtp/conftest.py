"""Fixtures for the SMTP client tests: real servers on 127.0.0.1 and a client for each driver."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

# Let the tests run from a checkout that has not been installed (pip install -e .).
_SRC = Path(__file__).resolve().parents[2] / "src"
if str(_SRC) not in sys.path:
    sys.path.insert(0, str(_SRC))

from mailout.smtp import AsyncSMTPClient, SMTPClient  # noqa: E402
from tests.smtp.smtp_helpers import MakeClient, SyncAsAsync  # noqa: E402


@pytest.fixture(params=["async", "sync"])
def make_client(request: pytest.FixtureRequest) -> MakeClient:
    """``make_client(host, port, **options)``: an async client, or the sync one wrapped."""

    def make(*args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", 5.0)
        if request.param == "async":
            return AsyncSMTPClient(*args, **kwargs)
        return SyncAsAsync(SMTPClient(*args, **kwargs))

    return make
