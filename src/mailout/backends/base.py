"""The backend contract every backend follows, and the base class for custom backends."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from mailout.exceptions import InvalidMailer, MessageTypeError

if TYPE_CHECKING:
    from mailout.message import EmailMessage

__all__ = ["BaseEmailBackend", "checked_messages"]


def checked_messages(email_messages: Sequence[EmailMessage]) -> list[EmailMessage]:
    """The messages as a list, each one checked to be a message: ``send_messages(["hi"])``
    is a MessageTypeError naming the position, not an AttributeError from deep inside."""
    messages = list(email_messages)
    for index, message in enumerate(messages):
        if not callable(getattr(message, "recipients", None)):
            raise MessageTypeError(
                f"messages[{index}]: expected an email message, got {type(message).__name__}"
            )
    return messages


class BaseEmailBackend:
    """Base for email backends: subclass it and implement ``send_messages``.

    ``open()``/``close()`` manage a long-lived connection when the backend has one. Used as a
    context manager, the backend is opened on entry and closed on exit (also when open fails).
    The async methods run the sync ones in a worker thread unless a backend overrides them, so
    no backend ever blocks an event loop.
    """

    #: Options that get_connection()/send_mail() may pass to any backend (Django passes
    #: auth_user/auth_password on as these); backends without credentials ignore them.
    ignored_options = frozenset({"username", "password"})

    def __init__(
        self, fail_silently: bool = False, *, alias: str | None = None, **kwargs: Any
    ) -> None:
        #: The MAILERS alias this backend was built for (None: built from the EMAIL_* settings
        #: or directly). Subclasses pass ``alias`` and their unknown options on to here.
        self.alias = alias
        self.fail_silently = fail_silently
        unknown = [name for name in kwargs if name not in self.ignored_options]
        if not unknown:
            return
        # A typo in an option must not be silently ignored (Django 6.1 only warns without an
        # alias; mailout refuses in both cases).
        names = ", ".join(repr(name) for name in unknown)
        if alias is not None:
            raise InvalidMailer(f"Unknown options {names}.", alias=alias)
        raise TypeError(f"{type(self).__name__}: unknown options {names}")

    def open(self) -> bool | None:
        """Open a long-lived connection; return True if this call opened it."""
        return None

    def close(self) -> None:
        """Close the connection opened by ``open()``, if any."""

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        """Send ``email_messages``; return how many were sent."""
        raise NotImplementedError("subclasses of BaseEmailBackend must override send_messages()")

    def __enter__(self) -> Self:
        try:
            self.open()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def aopen(self) -> bool | None:
        return await asyncio.to_thread(self.open)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)

    async def asend_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        return await asyncio.to_thread(self.send_messages, list(email_messages))

    async def __aenter__(self) -> Self:
        try:
            await self.aopen()
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
