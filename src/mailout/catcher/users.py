"""The catcher's AUTH users (``mailout serve --auth FILE``): who may log in, with what password."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from pathlib import Path

__all__ = ["load_users", "password_matches"]


def load_users(path: str | Path) -> dict[str, str]:
    """Read a users file: one ``user:password`` per line; blank lines and ``#`` comments skipped."""
    users: dict[str, str] = {}
    text = Path(path).read_text(encoding="utf-8")
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, password = line.partition(":")
        if not sep or not user:
            raise ValueError(f"{path}, line {number}: expected user:password")
        users[user] = password
    return users


def password_matches(users: Mapping[str, str], user: str, password: bytes) -> bool:
    """Whether ``user`` is known and ``password`` is theirs (compared in constant time)."""
    expected = users.get(user)
    return expected is not None and hmac.compare_digest(expected.encode("utf-8"), password)
