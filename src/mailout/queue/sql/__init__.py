"""Named SQL queries, one folder per engine, loaded from ``.sql`` files (never built in code).

A file holds blocks that start with ``-- name: <name>``; everything up to the next such line
is that query. Values are always bound as parameters; no query text is ever formatted.
"""

from __future__ import annotations

import functools
import re
from importlib import resources

__all__ = ["load"]

_NAME = re.compile(r"^-- name: ([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


@functools.cache
def load(engine: str, file: str = "queries.sql") -> dict[str, str]:
    """The queries of ``<engine>/<file>`` by name (``load("sqlite")["claim"]``)."""
    text = resources.files(__package__).joinpath(engine, file).read_text(encoding="utf-8")
    parts = _NAME.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in queries:
            raise ValueError(f"{engine}/{file}: query {name!r} is defined twice")
        queries[name] = body.strip()
    return queries
