"""Imports go one way (DESIGN.md, "Layers"): no module imports, at import time, one that imports
it back, and a message never imports the backend machinery (it looks its backend up when sent).

Read from the source (ast): the imports a module runs when it is imported, i.e. those at module
level, ``if TYPE_CHECKING:`` blocks and function bodies left out.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = SRC / "mailout"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _resolve(name: str) -> str | None:
    """The mailout module ``name`` refers to (a module, or an attribute of a package)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def import_time_imports(module: str) -> set[str]:
    """The mailout modules ``module`` imports when it is imported."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()

    def visit(statements: list[ast.stmt]) -> None:
        for node in statements:
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                # "from package import module" needs that module; "from module import name"
                # needs the module.
                names = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                    for alias in node.names
                ]
            elif isinstance(node, ast.If) and not _is_type_checking(node):
                visit(node.body)
                visit(node.orelse)
                continue
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)
                visit(node.orelse)
                visit(node.finalbody)
                continue
            else:
                continue
            for name in names:
                target = _resolve(name) if name.startswith("mailout") else None
                if target is not None and target != module:
                    found.add(target)

    visit(ast.parse(path.read_text(encoding="utf-8")).body)
    return found


GRAPH = {module: import_time_imports(module) for module in MODULES}


def closure(module: str) -> set[str]:
    seen: set[str] = set()
    stack = [module]
    while stack:
        for target in GRAPH[stack.pop()]:
            if target not in seen:
                seen.add(target)
                stack.append(target)
    return seen


def test_no_module_imports_itself_back() -> None:
    cycles = sorted(m for m in MODULES if m in closure(m))
    assert cycles == [], f"import cycles through: {cycles}"


# The message layer: what a message is, and how it becomes bytes. None of it may need the
# backends, the mailers or the package's front door to be imported.
MESSAGE_LAYER = [
    "mailout.message",
    "mailout.address",
    "mailout.wire",
    "mailout.wireform",
    "mailout._wire.body",
    "mailout._wire.headers",
    "mailout._wire.ids",
    "mailout._wire.parts",
    "mailout._canonical",
    "mailout._compat",
    "mailout.conf",
    "mailout._email_url",
    "mailout._setting_checks",
    "mailout.utils",
    "mailout.exceptions",
]
ABOVE_MESSAGES = ("mailout", "mailout.mailers", "mailout.backends", "mailout.smtp")


@pytest.mark.parametrize("module", MESSAGE_LAYER)
def test_message_layer_never_imports_backends(module: str) -> None:
    upward = sorted(
        m
        for m in closure(module)
        if m == "mailout" or any(m == a or m.startswith(f"{a}.") for a in ABOVE_MESSAGES[1:])
    )
    assert upward == [], f"{module} imports {upward} at import time"


def test_backends_base_and_mailers_do_not_import_messages() -> None:
    """The backend contract and the mailers name messages only for typing."""
    for module in ("mailout.backends.base", "mailout.mailers"):
        assert "mailout.message" not in closure(module), module


def test_the_checker_sees_imports() -> None:
    """The analysis itself: known edges are found, typing-only ones are not."""
    assert "mailout.address" in GRAPH["mailout.message"]
    assert "mailout.message" in GRAPH["mailout.wire"]
    assert "mailout.wire" in GRAPH["mailout.backends.smtp"]
    assert "mailout.backends.base" not in GRAPH["mailout.message"]  # under TYPE_CHECKING
    assert "mailout.mailers" in GRAPH["mailout"]
