"""Values that must differ per message: MIME boundaries, Message-ID, and the Date field."""

from __future__ import annotations

import datetime
import hashlib
import itertools
import os
import random
import secrets
import time
from collections.abc import Sequence
from email.utils import format_datetime

from mailout.utils import DNS_NAME

__all__ = ["boundaries", "date", "message_id"]


class _Process:
    """This process's id and secret key, taken again after a fork (``os.getpid()`` is a system
    call, and a child must never draw the same boundaries as its parent)."""

    def __init__(self) -> None:
        self.refresh()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self.refresh)

    def refresh(self) -> None:
        self.pid = os.getpid()
        self.key = secrets.token_bytes(32)
        self.counter = itertools.count()


_process = _Process()
_ids = random.Random()
_sequence = itertools.count()


def _tokens() -> tuple[str, str]:
    """Two unpredictable tokens from one keyed BLAKE2 hash of a counter: boundaries cannot be
    guessed from earlier messages, and ``os.urandom()`` per message costs more than a render."""
    count = next(_process.counter).to_bytes(8, "big")
    digest = hashlib.blake2b(count, key=_process.key, digest_size=32).hexdigest()
    return digest[:32], digest[32:]


def boundaries(raw: Sequence[bytes], seed: int | None) -> tuple[str, str]:
    """Two fresh boundaries found in no 7bit/8bit body (RFC 2046 §5.1.1).

    "=_" never occurs in base64 or quoted-printable text, where "=" is padding or an escape.
    """
    rng = random.Random(seed) if seed is not None else None
    while True:
        if rng is None:
            outer, inner = _tokens()
        else:
            outer, inner = f"{rng.getrandbits(128):032x}", f"{rng.getrandbits(128):032x}"
        outer, inner = "=_" + outer, "=_" + inner
        if outer != inner and not (raw and _found(raw, outer.encode(), inner.encode())):
            return outer, inner


def _found(raw: Sequence[bytes], outer: bytes, inner: bytes) -> bool:
    return any(outer in body or inner in body for body in raw)


_date_cache: tuple[int, object, str] = (-1, None, "")


def date(zone: datetime.tzinfo | None) -> str:
    """Now, as RFC 5322 §3.3 writes it, in ``zone`` (the machine's local time if None); the
    text is made once a second."""
    global _date_cache
    second = int(time.time())
    cached = _date_cache
    if cached[0] == second and cached[1] is zone:
        return cached[2]
    # UTC is "+0000" (RFC 5322 §3.3: "-0000" would say the zone is unknown).
    moment = datetime.datetime.fromtimestamp(second, datetime.UTC)
    text = format_datetime(moment.astimezone(zone))
    _date_cache = (second, zone, text)
    return text


def message_id() -> str:
    # Unique by time, process, a counter and chance, like email.utils.make_msgid().
    unique = f"{time.time_ns() // 1000}.{_process.pid}.{next(_sequence)}.{_ids.getrandbits(40)}"
    return f"<{unique}@{DNS_NAME.get_fqdn()}>"
