"""The protocol core does no I/O: none of its modules may import an I/O or clock module."""

from __future__ import annotations

import ast
from pathlib import Path

import mailout.smtp._protocol as core

FORBIDDEN = {"socket", "ssl", "asyncio", "time", "threading", "selectors", "select", "trio"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "id", "") == "__import__":
            names.add("__import__")
    return names


def test_core_modules_import_no_io() -> None:
    files = sorted(Path(core.__file__).parent.glob("*.py"))
    assert len(files) >= 7
    for path in files:
        bad = _imports(path) & (FORBIDDEN | {"__import__", "importlib"})
        assert not bad, f"{path.name} imports {sorted(bad)}"


def test_core_imports_only_core_and_stdlib_helpers() -> None:
    for path in Path(core.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.module.startswith("mailout")
            ):
                # mailout._canonical is a leaf (it imports nothing): the marker of bytes the
                # serialiser wrote in canonical form, shared with the core's framing.
                assert node.module in (
                    "mailout.exceptions",
                    "mailout._canonical",
                ) or node.module.startswith("mailout.smtp._protocol"), (
                    f"{path.name} imports {node.module}"
                )
