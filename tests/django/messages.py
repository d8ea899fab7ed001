"""Django messages for the differential tests: each built fresh, with the path mailout takes.

``fast`` says whether mailout.django renders the message with mailout's fast serialiser under
the installed Django (else it goes through Django's own serialisation): the tests check that
too, so a regression that quietly sends everything the slow way cannot pass.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from email.message import MIMEPart
from email.mime.image import MIMEImage
from pathlib import Path
from typing import Any

from django.core.mail import EmailMessage, EmailMultiAlternatives
from django.utils.translation import gettext_lazy

from tests.django.helpers import MODERN

PDF = b"%PDF-1.4\n" + random.Random(11).randbytes(3000)
PNG = b"\x89PNG\r\n\x1a\n" + random.Random(12).randbytes(600)
SHOP = "Example Shop <shop@example.com>"
TEXT = (
    "Hello Ana,\n\nyour order #1001 has shipped. Track it at https://shop.example.com/t/1001\n"
    "\nThe Example Shop team\n"
)
HTML = "<p>Hello Ana,</p><p>your order <b>#1001</b> has shipped.</p>\n"


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[Path], Any]
    fast: bool


def text(tmp: Path) -> Any:
    return EmailMessage("Your order has shipped", TEXT, SHOP, ["Ana Lima <ana@example.com>"])


def alternatives(tmp: Path) -> Any:
    message = EmailMultiAlternatives(
        "Your order has shipped",
        TEXT,
        SHOP,
        ["ana@example.com", "Bo <bo@example.com>"],
        cc=["cc@example.com"],
        bcc=["audit@example.com"],
        reply_to=["Help Desk <help@example.com>"],
    )
    message.attach_alternative(HTML, "text/html")
    return message


def html_body(tmp: Path) -> Any:
    message = EmailMessage("HTML only", HTML, SHOP, ["ana@example.com"])
    message.content_subtype = "html"
    return message


def attachments(tmp: Path) -> Any:
    notes = tmp / "notes.txt"
    notes.write_text("line one\nline two, ünïcode\n", encoding="utf-8")
    message = EmailMultiAlternatives("Invoice", TEXT, SHOP, ["ana@example.com"])
    message.attach_alternative(HTML, "text/html")
    message.attach("invoice-1001.pdf", PDF, "application/pdf")
    message.attach("items.csv", "sku,qty\nA-1,2\nB-2,1\n", "text/csv")
    message.attach("data.json", '{"order": 1001}', "application/json")
    message.attach("logo.png", PNG)
    message.attach_file(notes)
    return message


def html_without_final_newline(tmp: Path) -> Any:
    message = EmailMultiAlternatives("HTML", "Text.\n", SHOP, ["ana@example.com"])
    message.attach_alternative(HTML.rstrip(), "text/html")
    return message


def attachment_without_name(tmp: Path) -> Any:
    message = EmailMessage("Data", "See the data.", SHOP, ["ana@example.com"])
    message.attach(None, b"\x00\x01binary", "application/octet-stream")
    return message


def empty_body_with_parts(tmp: Path) -> Any:
    message = EmailMultiAlternatives("Only parts", "", SHOP, ["ana@example.com"])
    message.attach_alternative(HTML, "text/html")
    message.attach("invoice.pdf", PDF, "application/pdf")
    return message


def non_ascii(tmp: Path) -> Any:
    message = EmailMultiAlternatives(
        "Grüße aus Köln — ünïcödé ✓ 🎉",
        "Liebe Zoë,\n\nvielen Dank für Ihre Bestellung — 12 €.\n",
        "Zoë Müller <zoe@example.com>",
        ["José Ñandú <jose@bücher.example>", "Łukasz <lukasz@example.pl>"],
        cc=["Straße <cc@example.com>"],
    )
    message.attach_alternative("<p>Vielen Dank — 12 € ✓ 🎉</p>\n", "text/html")
    message.attach("résumé — Zoë.pdf", PDF, "application/pdf")
    message.attach("naïve.txt", "naïve café\n", "text/plain")
    return message


def custom_headers(tmp: Path) -> Any:
    return EmailMessage(
        "Newsletter",
        "News.",
        SHOP,
        ["ana@example.com"],
        headers={
            "X-Campaign": "spring-2026",
            "List-Unsubscribe": "<https://shop.example.com/u/ana>",
            "X-Note": "nicht ASCII: Größe",
            "Message-ID": "<pinned.1001@shop.example.com>",
        },
    )


def structured_headers(tmp: Path) -> Any:
    return EmailMessage(
        "Structured headers",
        "Body.",
        SHOP,
        ["ana@example.com"],
        headers={"Reply-To": "Help <help@example.com>", "Date": "Fri, 09 Nov 2001 01:08:47 -0000"},
    )


def bcc_only(tmp: Path) -> Any:
    return EmailMessage("Blind", "Only Bcc.", SHOP, bcc=["hidden@example.com", "h2@example.com"])


class Overridden(EmailMessage):  # type: ignore[misc]
    """A project's subclass whose message() adds a header: what it returns is what is sent."""

    def message(self, **kwargs: Any) -> Any:
        msg = super().message(**kwargs)
        msg["X-Overridden"] = "yes"
        return msg


def message_override(tmp: Path) -> Any:
    return Overridden("Overridden", "Body.", SHOP, ["ana@example.com"])


def long_lines(tmp: Path) -> Any:
    body = "A" * 1200 + "\n" + "ü" * 120 + "\n" + "word " * 40 + "\n"
    subject = "A long subject line " * 10
    return EmailMessage(subject.strip(), body, SHOP, ["ana@example.com"])


def dots_and_from(tmp: Path) -> Any:
    body = ".leading dot\nFrom here\n..two dots\n.\nlast\n"
    return EmailMessage("Dots", body, SHOP, ["ana@example.com"])


def lazy_strings(tmp: Path) -> Any:
    return EmailMessage(gettext_lazy("Welcome"), gettext_lazy("Hello"), SHOP, ["ana@example.com"])


def latin1(tmp: Path) -> Any:
    message = EmailMessage("Latin-1", "café crème\n", SHOP, ["ana@example.com"])
    message.encoding = "iso-8859-1"
    return message


def many_recipients(tmp: Path) -> Any:
    to = [f"Customer {n} <customer{n}@example.org>" for n in range(30)]
    return EmailMessage("Hello all", "Hi.", SHOP, to, cc=[f"c{n}@example.net" for n in range(5)])


def non_ascii_text_for_binary_type(tmp: Path) -> Any:
    message = EmailMessage("Binary", "See attached.", SHOP, ["ana@example.com"])
    message.attach("x.bin", "naïve", "application/octet-stream")
    return message


def inline_image(tmp: Path) -> Any:
    """An HTML body with an inline image, as each Django version documents it."""
    cid = "<logo.1001@shop.example.com>"  # the same in both copies of the message
    message = EmailMultiAlternatives("Inline", "See the logo.", SHOP, ["ana@example.com"])
    message.attach_alternative(f'<p>Logo: <img src="cid:{cid[1:-1]}"></p>', "text/html")
    if MODERN:
        image = MIMEPart()
        image.set_content(PNG, maintype="image", subtype="png", disposition="inline", cid=cid)
    else:
        message.mixed_subtype = "related"
        image = MIMEImage(PNG, "png")
        image.add_header("Content-ID", cid)
        image.add_header("Content-Disposition", "inline", filename="logo.png")
    message.attach(image)
    return message


CASES = [
    Case("text", text, fast=True),
    Case("alternatives", alternatives, fast=True),
    Case("html_body", html_body, fast=True),
    Case("attachments", attachments, fast=True),
    # Django 5.2 writes a text part inside a multipart without the final line break mailout
    # (and Django 6) ends it with, and an attachment without a file name with no
    # Content-Disposition: mailout leaves both to Django there.
    Case("html_without_final_newline", html_without_final_newline, fast=MODERN),
    Case("attachment_without_name", attachment_without_name, fast=MODERN),
    Case("empty_body_with_parts", empty_body_with_parts, fast=True),
    Case("non_ascii", non_ascii, fast=True),
    Case("custom_headers", custom_headers, fast=True),
    Case("structured_headers", structured_headers, fast=False),
    Case("bcc_only", bcc_only, fast=True),
    Case("message_override", message_override, fast=False),
    Case("long_lines", long_lines, fast=True),
    Case("dots_and_from", dots_and_from, fast=True),
    Case("lazy_strings", lazy_strings, fast=True),
    Case("latin1", latin1, fast=False),
    Case("many_recipients", many_recipients, fast=True),
    Case("non_ascii_text_for_binary_type", non_ascii_text_for_binary_type, fast=False),
    Case("inline_image", inline_image, fast=False),
]
