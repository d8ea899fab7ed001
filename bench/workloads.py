"""The benchmarks' messages: a shipping notice (~2 KB text, ~2.5 KB HTML, optionally a 50 KB PDF).

Shared by ``smtp_bench.py`` (the network view) and ``cpu_budget.py`` (the CPU budget per stage),
so that both measure the same message.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from typing import Any

import mailout

SENDER = "Example Shop <orders@shop.example.com>"


@dataclass(frozen=True, slots=True)
class Spec:
    """One message as plain data; both views build real messages from it."""

    subject: str
    text: str
    html: str
    to: str
    rcpt: str
    attachment: tuple[str, bytes, str] | None


_ITEMS = [
    ("Merino wool crew-neck sweater, charcoal, size M", 89.00),
    ("Organic cotton T-shirt, 3-pack, white", 45.00),
    ("Waterproof trail running shoes, EU 43", 139.90),
    ("Stainless steel insulated bottle, 750 ml", 29.50),
    ("Leather card holder, cognac", 35.00),
    ("Wool-blend hiking socks, 2 pairs", 24.00),
    ("Packable down vest, navy, size L", 119.00),
    ("Canvas weekender bag, olive", 98.00),
]


def make_spec(n: int, attachment: bytes | None) -> Spec:
    """A shipping notification: ~2 KB of text, ~2.5 KB of HTML, optionally a 50 KB PDF."""
    name = f"Customer {n}"
    rcpt = f"customer{n}@example.org"
    order = 100000 + n
    lines = [f"  {i + 1}. {title:<52} EUR {price:>7.2f}" for i, (title, price) in enumerate(_ITEMS)]
    total = sum(price for _, price in _ITEMS)
    text = "\n".join(
        [
            f"Hello {name},",
            "",
            f"Good news: your order #{order} has shipped and is on its way to you. You can",
            "follow the parcel with the tracking link below; it may take a few hours before the",
            "carrier shows the first scan.",
            "",
            f"Tracking number: 1Z{order:010d}DE  (carrier: Example Parcel Service)",
            f"Track it: https://shop.example.com/orders/{order}/tracking",
            "",
            "What is in the parcel:",
            "",
            *lines,
            "",
            f"  Subtotal{'':<49} EUR {total:>7.2f}",
            f"  Shipping{'':<49} EUR {0:>7.2f}",
            f"  Total{'':<52} EUR {total:>7.2f}",
            "",
            "Delivery address:",
            f"  {name}",
            f"  {n % 200 + 1} Example Street",
            "  12345 Example City",
            "",
            "Something not right? Reply to this email or visit https://shop.example.com/help and",
            "quote your order number. Returns are free within 30 days of delivery; start one from",
            "your account page, print the label and drop the parcel at any collection point.",
            "",
            "Thank you for shopping with us,",
            "The Example Shop team",
            "",
            "--",
            "Example Shop GmbH, Example Street 1, 12345 Example City. You receive this email",
            "because you placed an order. Manage your email preferences in your account.",
        ]
    )
    rows = "\n".join(
        f'<tr><td style="padding:4px 8px">{title}</td>'
        f'<td style="padding:4px 8px;text-align:right">EUR {price:.2f}</td></tr>'
        for title, price in _ITEMS
    )
    html = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Your order #{order} has shipped</title></head>
<body style="font-family:Helvetica,Arial,sans-serif;color:#222;max-width:600px;margin:auto">
<h1 style="font-size:20px">Your order is on its way</h1>
<p>Hello {name},</p>
<p>Good news: your order <strong>#{order}</strong> has shipped. Follow the parcel with
<a href="https://shop.example.com/orders/{order}/tracking">tracking number 1Z{order:010d}DE</a>.
It may take a few hours before the carrier shows the first scan.</p>
<table style="border-collapse:collapse;width:100%">
{rows}
<tr><td style="padding:4px 8px"><strong>Total</strong></td>
<td style="padding:4px 8px;text-align:right"><strong>EUR {total:.2f}</strong></td></tr>
</table>
<p>Delivery address: {name}, {n % 200 + 1} Example Street, 12345 Example City.</p>
<p>Something not right? Reply to this email or visit
<a href="https://shop.example.com/help">our help pages</a>. Returns are free within 30 days.</p>
<p>Thank you for shopping with us,<br>The Example Shop team</p>
<p style="font-size:11px;color:#888">Example Shop GmbH, Example Street 1, 12345 Example City.
You receive this email because you placed an order.
<a href="https://shop.example.com/account/email">Manage your email preferences</a>.</p>
</body></html>
"""
    return Spec(
        subject=f"Your order #{order} has shipped",
        text=text,
        html=html,
        to=f"{name} <{rcpt}>",
        rcpt=rcpt,
        attachment=(f"invoice-{order}.pdf", attachment, "application/pdf") if attachment else None,
    )


def mailout_message(spec: Spec) -> mailout.EmailMessage:
    """The message as a mailout user builds it; text only when ``spec.html`` is empty."""
    if not spec.html:
        return mailout.EmailMessage(spec.subject, spec.text, SENDER, [spec.to])
    message = mailout.EmailMultiAlternatives(spec.subject, spec.text, SENDER, [spec.to])
    message.attach_alternative(spec.html, "text/html")
    if spec.attachment is not None:
        message.attach(*spec.attachment)
    return message


def django_message(spec: Spec) -> Any:
    """The same message built with Django's classes."""
    from django.core.mail import EmailMessage, EmailMultiAlternatives

    if not spec.html:
        return EmailMessage(spec.subject, spec.text, SENDER, [spec.to])
    message = EmailMultiAlternatives(spec.subject, spec.text, SENDER, [spec.to])
    message.attach_alternative(spec.html, "text/html")
    if spec.attachment is not None:
        message.attach(*spec.attachment)
    return message


# The three workloads of the CPU budget: text only, text + HTML, text + HTML + a 50 KB PDF.
WORKLOADS = ("text", "html", "attachment")
PDF = random.Random(50).randbytes(50 * 1024)


def make_specs(workload: str, count: int) -> list[Spec]:
    """``count`` distinct messages of ``workload`` (one of WORKLOADS)."""
    if workload not in WORKLOADS:
        raise ValueError(f"workload must be one of {WORKLOADS}, not {workload!r}")
    specs = [make_spec(n, PDF if workload == "attachment" else None) for n in range(count)]
    if workload == "text":
        specs = [dataclasses.replace(s, html="") for s in specs]
    return specs
