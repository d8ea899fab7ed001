"""The values a caller hands to and gets back from the SMTP client."""

from __future__ import annotations

from dataclasses import dataclass

from mailout.exceptions import InvalidMessageError
from mailout.mailbox import check_mailbox
from mailout.smtp._protocol.reply import Reply

__all__ = ["Envelope", "SendResult"]


@dataclass(frozen=True, slots=True)
class Envelope:
    """Who a message is from and to, as the server sees it (RFC 5321 §2.3.1).

    ``smtputf8`` asks for SMTPUTF8 (RFC 6531) and fails if the server lacks it; ``eight_bit``
    adds BODY=8BITMIME (RFC 6152) when the server offers it.

    Every address must be a mailbox (RFC 5321 §4.1.2, UTF-8 allowed as RFC 6531 says) and is
    checked here, so that none can carry ESMTP parameters or commands onto the wire:
    InvalidAddressError (BadHeaderError for CR, LF or NUL) names the field. ``sender`` may be
    ``""``, the null reverse-path of bounces; any address may be a local part alone
    (``"postmaster"``, ``"webmaster"``), as Django allows.
    """

    sender: str
    recipients: tuple[str, ...]
    smtputf8: bool = False
    eight_bit: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.recipients, str):
            raise InvalidMessageError("recipients must be a sequence of addresses, not a str")
        # Accept any sequence (a list is the common mistake) but store a tuple: immutable, hashable.
        object.__setattr__(self, "recipients", tuple(self.recipients))
        if not self.recipients:
            raise InvalidMessageError("recipients is empty: an envelope needs at least one")
        check_mailbox("Envelope.sender", self.sender, null=True)
        for index, recipient in enumerate(self.recipients):
            check_mailbox(f"Envelope.recipients[{index}]", recipient)

    @classmethod
    def _checked(
        cls, sender: str, recipients: tuple[str, ...], smtputf8: bool, eight_bit: bool
    ) -> Envelope:
        """An envelope of addresses that ``mailout.address.parse_address`` already checked
        against the same mailbox grammar (once for the headers and the envelope alike);
        for mailout's own backends, which build thousands a second."""
        if not recipients:
            raise InvalidMessageError("recipients is empty: an envelope needs at least one")
        envelope = object.__new__(cls)
        set_ = object.__setattr__
        set_(envelope, "sender", sender)
        set_(envelope, "recipients", recipients)
        set_(envelope, "smtputf8", smtputf8)
        set_(envelope, "eight_bit", eight_bit)
        return envelope


@dataclass(frozen=True, slots=True)
class SendResult:
    """The outcome of one accepted transaction."""

    accepted: dict[str, Reply]
    refused: dict[str, Reply]
    reply: Reply  # the final reply to DATA content or BDAT LAST
