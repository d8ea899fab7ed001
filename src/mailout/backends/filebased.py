"""A backend for development: each opened session writes its messages to a new file."""

from __future__ import annotations

import datetime
import itertools
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from mailout.backends.base import BaseEmailBackend
from mailout.conf import settings
from mailout.exceptions import ImproperlyConfigured
from mailout.wire import render_message

if TYPE_CHECKING:
    from mailout.message import EmailMessage

SEPARATOR = b"-" * 79
_sessions = itertools.count(1)


class EmailBackend(BaseEmailBackend):
    def __init__(
        self, *args: Any, file_path: str | os.PathLike[str] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        field = "file_path" if file_path is not None else "EMAIL_FILE_PATH"
        path = file_path if file_path is not None else settings.EMAIL_FILE_PATH
        if not path:
            raise ImproperlyConfigured(
                "EMAIL_FILE_PATH: the file backend needs a directory (setting or file_path=)"
            )
        self.file_path = Path(os.path.abspath(os.fspath(path)))
        if self.file_path.exists() and not self.file_path.is_dir():
            raise ImproperlyConfigured(
                f"{field}: {str(self.file_path)!r} exists and is not a directory"
            )
        try:
            self.file_path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ImproperlyConfigured(
                f"{field}: cannot create directory {str(self.file_path)!r} ({exc.strerror})"
            ) from None
        if not os.access(self.file_path, os.W_OK | os.X_OK):
            raise ImproperlyConfigured(
                f"{field}: directory {str(self.file_path)!r} is not writable"
            )
        self._fname: Path | None = None
        self._stream: IO[bytes] | None = None
        self._lock = threading.RLock()

    def _get_filename(self) -> Path:
        """The file for the current session, chosen when it is first needed."""
        if self._fname is None:
            # Microseconds and a counter: sessions opened within one second get files of their own.
            stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
            self._fname = self.file_path / f"{stamp}-{os.getpid()}-{next(_sessions)}.log"
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
                    self._fname = None  # the next session gets a new file

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        messages = list(email_messages)
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
