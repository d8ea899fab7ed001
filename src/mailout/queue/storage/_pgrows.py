"""Claimed rows of the PostgreSQL queue read back into messages, the usual row quickly.

A claim returns (id, attempts, mailer, priority, sender, pending, message_id, created_at,
queued_at, delivered, metadata, body) in PostgreSQL's binary format: Python values already.
Almost every message has metadata without user fields, in one of a few spellings: its flags
are remembered by its text rather than parsed again for each message.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final

from mailout._canonical import canonical
from mailout.queue.models import ClaimedMessage, Priority
from mailout.queue.storage._rows import claimed_from_row

__all__ = ["claimed"]


def claimed(row: Sequence[Any], where: str) -> ClaimedMessage:
    """A claimed row read back: the usual one (recipients a list of addresses, metadata
    without user fields, a body) without parsing its metadata again; anything else, and any
    doubt, through ``claimed_from_row``, which checks every field."""
    data = row[11]
    flags = _PLAIN_METADATA.get(row[10])
    if flags is None:
        flags = _plain_metadata(row[10])
    if flags is not None and isinstance(data, bytes) and data:
        if flags[2]:  # canonical when stored: not scanned again when sent
            data = canonical(data)
        try:
            recipients = json.loads(row[5])
        except (TypeError, ValueError):
            recipients = None
        if type(recipients) is list and recipients and all(type(r) is str for r in recipients):
            return ClaimedMessage(
                id=row[0],
                attempt=row[1],
                mailer=row[2],
                priority=_PRIORITIES.get(row[3], Priority.NORMAL),
                sender=row[4],
                recipients=tuple(recipients),
                data=data,
                message_id=row[6],
                created_at=row[7],
                queued_at=row[8],
                delivered=row[9],
                smtputf8=flags[0],
                eight_bit=flags[1],
                metadata={},
            )
    return claimed_from_row(row, None if data is None else bytes(data), where=where)


def _plain_metadata(text: object) -> tuple[bool, bool, bool] | None:
    """(smtputf8, eight_bit, crlf) of metadata with no user fields, remembered by its text."""
    try:
        meta = json.loads(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    if (
        type(meta) is not dict
        or meta.keys() - {"crlf"} != {"smtputf8", "eight_bit", "user"}
        or meta["user"] != {}
        or type(meta["smtputf8"]) is not bool
        or type(meta["eight_bit"]) is not bool
    ):
        return None
    flags = (meta["smtputf8"], meta["eight_bit"], meta.get("crlf") is True)
    if len(_PLAIN_METADATA) < 64:  # a few spellings at most: bounded all the same
        _PLAIN_METADATA[text] = flags  # type: ignore[index]
    return flags


_PLAIN_METADATA: dict[str, tuple[bool, bool, bool]] = {}
_PRIORITIES: Final = {int(p): p for p in Priority}
