"""The generated sync client is up to date with the async source, and every rule is alive."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_sync_client_is_generated_and_current() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "unasync.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_dead_rule_fails_the_check(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = importlib.util.spec_from_file_location("unasync_script", ROOT / "scripts" / "unasync.py")
    assert spec is not None
    assert spec.loader is not None
    unasync = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(unasync)
    monkeypatch.setattr(unasync, "RULES", [*unasync.RULES, (r"\bnever_used_anywhere\b", "x")])
    monkeypatch.setattr(
        unasync, "_COMPILED", [*unasync._COMPILED, (unasync.re.compile("never_used_anywhere"), "x")]
    )
    _, unused = unasync.generate()
    assert unused == [r"\bnever_used_anywhere\b"]
    assert unasync.main(["--check"]) == 1


def test_sync_client_has_no_async_left() -> None:
    source = (ROOT / "src" / "mailout" / "smtp" / "_sync" / "client.py").read_text()
    left = re.findall(r"\b(async|await|asyncio|AsyncStream|aclose|__aenter__|__aexit__)\b", source)
    assert left == []
