"""An SMTP reply: the three-digit code, the optional enhanced status code and the text."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Reply"]


@dataclass(frozen=True, slots=True)
class Reply:
    """One complete (possibly multi-line) reply, paired with the command that caused it.

    ``text`` holds the lines joined with ``"\\n"``, without codes; ``enhanced`` is the RFC 3463
    status code (``"5.1.1"``) when the server advertised ENHANCEDSTATUSCODES (RFC 2034).
    """

    code: int
    text: str
    enhanced: str | None = None
    command: str = ""

    def __str__(self) -> str:
        head = f"{self.code} {self.enhanced}" if self.enhanced else str(self.code)
        return f"{head} {self.text}" if self.text else head

    @property
    def is_positive(self) -> bool:  # RFC 5321 §4.2.1: 2yz positive completion
        return 200 <= self.code < 300

    @property
    def is_intermediate(self) -> bool:  # RFC 5321 §4.2.1: 3yz positive intermediate
        return 300 <= self.code < 400

    @property
    def is_transient(self) -> bool:  # RFC 5321 §4.2.1: 4yz transient negative
        return 400 <= self.code < 500

    @property
    def is_permanent(self) -> bool:  # RFC 5321 §4.2.1: 5yz permanent negative
        return 500 <= self.code < 600
