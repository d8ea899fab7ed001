"""A backend for development: each opened session writes its messages to a new file."""

from __future__ import annotations

import datetime
import itertools
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from mailout.backends.base import BaseEmailBackend, checked_messages
from mailout.conf import settings
from mailout.exceptions import ImproperlyConfigured, InvalidMailer
from mailout.wire import render_message

if TYPE_CHECKING:
    from mailout.message import EmailMessage

SEPARATOR = b"-" * 79
_sessions = itertools.count(1)


class EmailBackend(BaseEmailBackend):
    """Writes the messages of each backend instance to a file of its own in ``file_path``.

    Built from ``MAILERS`` (with an alias), ``file_path`` is required and the ``EMAIL_FILE_PATH``
    setting is not read; otherwise ``file_path`` defaults to that setting.
    """

    def __init__(
        self, *args: Any, file_path: str | os.PathLike[str] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        alias = self.alias
        if alias is not None:
            if file_path is None:
                raise InvalidMailer("OPTIONS must define 'file_path'.", alias=alias)
            self.file_path = _directory(file_path, "file_path", alias)
        else:
            field = "file_path" if file_path is not None else "EMAIL_FILE_PATH"
            path = file_path if file_path is not None else settings.EMAIL_FILE_PATH
            if not path:
                raise ImproperlyConfigured(
                    "EMAIL_FILE_PATH: The EMAIL_FILE_PATH setting must be set to use the file "
                    "EmailBackend. (Or pass file_path=.)"
                )
            self.file_path = _directory(path, field, None)
        self._fname: Path | None = None
        self._stream: IO[bytes] | None = None
        self._lock = threading.RLock()

    def _get_filename(self) -> Path:
        """This backend's file, named when it is first needed and kept across close()/open()."""
        if self._fname is None:
            # Microseconds and a counter: backends created within one second get files of their own.
            stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
            name = f"{stamp}-{os.getpid()}-{next(_sessions)}.log"
            self._fname = Path(self.file_path) / name
        return self._fname

    def open(self) -> bool:
        if self._stream is not None:
            return False
        self._stream = self._get_filename().open("ab")
        return True

    def close(self) -> None:
        with self._lock:
            if self._stream is not None:
                try:
                    self._stream.close()
                finally:
                    self._stream = None

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        messages = checked_messages(email_messages)
        if not messages:
            return 0
        try:
            blobs = [render_message(m, smtputf8_ok=True, linesep="\n") for m in messages]
            with self._lock:
                opened = self.open()
                try:
                    assert self._stream is not None
                    for blob in blobs:
                        self._stream.write(blob + b"\n" + SEPARATOR + b"\n")
                    self._stream.flush()
                finally:
                    if opened:
                        self.close()
        except Exception:
            if not self.fail_silently:
                raise
            return 0
        return len(messages)


def _directory(path: object, field: str, alias: str | None) -> str:
    """``path`` made absolute and created if missing; an unusable one raises an error naming
    ``field`` (``InvalidMailer`` for a MAILERS entry), with Django's wording in it."""
    directory: str = os.path.abspath(path)  # type: ignore[call-overload]  # TypeError if no path
    where = f"{field}: " if alias is None else ""

    def error(mailers_text: str, settings_text: str, detail: str = "") -> ImproperlyConfigured:
        if alias is not None:
            return InvalidMailer(f"{mailers_text}{detail}", alias=alias)
        return ImproperlyConfigured(f"{where}{settings_text}{detail}")

    try:
        os.makedirs(directory, exist_ok=True)
    except FileExistsError:
        raise error(
            f"'file_path' is not a directory: {directory}",
            f"Path for saving email messages exists, but is not a directory: {directory}",
        ) from None
    except OSError as exc:
        raise error(
            f"Could not create 'file_path': {directory}",
            f"Could not create directory for saving email messages: {directory}",
            f" ({exc.strerror})",
        ) from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise error(
            f"'file_path' is not writable: {directory}",
            f"Could not write to directory: {directory} (not writable)",
        )
    return directory
