"""What the server offers, parsed from its reply to EHLO (RFC 5321 §4.1.1.1)."""

from __future__ import annotations

from dataclasses import dataclass, field

from mailout.smtp._protocol.reply import Reply

__all__ = ["Extensions"]


@dataclass(frozen=True, slots=True)
class Extensions:
    """Service extensions keyed by upper-case keyword, with their parameters."""

    keywords: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, reply: Reply) -> Extensions:
        """Parse a positive EHLO reply; its first line is the server's domain, not an extension."""
        keywords: dict[str, str] = {}
        for line in reply.text.split("\n")[1:]:
            word, _, params = line.strip().partition(" ")
            if not word:
                continue
            # Some old servers advertise "AUTH=LOGIN PLAIN" next to (or instead of) "AUTH ...".
            if "=" in word and word.upper().startswith("AUTH="):
                word, params = "AUTH", f"{word[5:]} {params}".strip()
            key = word.upper()
            if key == "AUTH" and key in keywords:
                params = f"{keywords[key]} {params}".strip()
            keywords[key] = params.strip()
        return cls(keywords)

    def __contains__(self, keyword: object) -> bool:
        return isinstance(keyword, str) and keyword.upper() in self.keywords

    @property
    def size(self) -> int | None:
        """RFC 1870 §4: the fixed maximum message size; None when not offered or unlimited (0)."""
        value = self.keywords.get("SIZE")
        if value is None:
            return None
        try:
            size = int(value.split()[0]) if value.strip() else 0
        except ValueError:
            return None
        return size or None

    @property
    def auth_mechanisms(self) -> frozenset[str]:
        return frozenset(m.upper() for m in self.keywords.get("AUTH", "").split())

    @property
    def pipelining(self) -> bool:
        return "PIPELINING" in self.keywords

    @property
    def chunking(self) -> bool:
        return "CHUNKING" in self.keywords

    @property
    def eight_bit_mime(self) -> bool:
        return "8BITMIME" in self.keywords

    @property
    def smtputf8(self) -> bool:
        return "SMTPUTF8" in self.keywords

    @property
    def starttls(self) -> bool:
        return "STARTTLS" in self.keywords

    @property
    def enhanced_status_codes(self) -> bool:
        return "ENHANCEDSTATUSCODES" in self.keywords
