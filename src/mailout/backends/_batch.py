"""A checked batch of the SMTP backend, encoded a slice at a time while the pool sends.

``send_messages()`` checks every message before anything is sent; what it keeps of each is
here: what ``wire.prepare`` made of it (its envelope and header fields, the bodies still to
encode), or, with a backend subclass's own steps, its (envelope, bytes) or a ``Later``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING

from mailout.smtp import Envelope
from mailout.wire import Prepared

if TYPE_CHECKING:
    from mailout.message import EmailMessage

__all__ = ["SLICE", "Batch", "Flag", "Item", "Later", "with_8bit"]

# Messages encoded and handed to the pool at a time (the pool's batch size).
SLICE = 50

Item = tuple[Envelope, bytes]
Serialize = Callable[["EmailMessage", Envelope], bytes]


class Flag(threading.local):
    """True in the thread inside ``with flag:`` (send_messages() calling open())."""

    active = False

    def __enter__(self) -> None:
        self.active = True

    def __exit__(self, *exc: object) -> None:
        self.active = False


def with_8bit(envelope: Envelope, data: bytes) -> Item:
    """RFC 6152: 8-bit content travels with BODY=8BITMIME."""
    if data.isascii():
        return envelope, data
    return Envelope._checked(envelope.sender, envelope.recipients, envelope.smtputf8, True), data


class Later:
    """A message checked by a backend subclass's own ``_check``, rendered by its own
    ``_serialize`` when its slice is sent."""

    __slots__ = ("envelope", "message", "serialize")

    def __init__(self, serialize: Serialize, message: EmailMessage, envelope: Envelope) -> None:
        self.serialize, self.message, self.envelope = serialize, message, envelope

    def item(self) -> Item:
        return with_8bit(self.envelope, self.serialize(self.message, self.envelope))


class Batch:
    """A checked batch: what ``wire.prepare`` made of each message, or a subclass's own
    (envelope, bytes) and ``Later`` items; encoded a slice at a time as the pool sends."""

    def __init__(self, entries: list[Prepared | Item | Later]) -> None:
        self.entries: list[Prepared | Item | Later | None] = list(entries)

    def __len__(self) -> int:
        return len(self.entries)

    def items(self, start: int, stop: int) -> list[Item]:
        items: list[Item] = []
        for index in range(start, min(stop, len(self.entries))):
            entry = self.entries[index]
            # Encoded now: the batch need not hold it (nor its header fields) any longer.
            self.entries[index] = None
            if isinstance(entry, Prepared):
                data = entry.finish()
                envelope = Envelope._checked(
                    entry.sender, entry.recipients, entry.smtputf8, not data.isascii()
                )
                items.append((envelope, data))
            elif isinstance(entry, Later):
                items.append(entry.item())
            elif entry is not None:
                items.append(entry)
        return items

    def slices(self) -> Iterator[list[Item]]:
        for start in range(0, len(self.entries), SLICE):
            yield self.items(start, start + SLICE)

    async def aslices(self) -> AsyncIterator[list[Item]]:
        for start in range(0, len(self.entries), SLICE):
            yield await asyncio.to_thread(self.items, start, start + SLICE)
