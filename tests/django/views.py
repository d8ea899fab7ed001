"""Views of the test shop that send mail, with Django's own API and mailout.django's async one."""

from __future__ import annotations

from django.core.mail import EmailMultiAlternatives, send_mail
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest

from mailout.django import asend_mail


def signup(request: HttpRequest) -> HttpResponse:
    address = request.POST["email"]
    sent = send_mail(
        "Welcome to the shop",
        f"Hello {address}, your account is ready.",
        None,
        [address],
        html_message=f"<p>Hello <b>{address}</b>, your account is ready.</p>",
    )
    return HttpResponse(f"sent {sent}")


async def async_signup(request: HttpRequest) -> HttpResponse:
    address = request.POST["email"]
    sent = await asend_mail(
        "Welcome (async)", f"Hello {address}, your account is ready.", None, [address]
    )
    return HttpResponse(f"sent {sent}")


def invoice(request: HttpRequest) -> HttpResponse:
    message = EmailMultiAlternatives(
        "Your invoice", "The invoice is attached.", to=[request.POST["email"]]
    )
    message.attach_alternative("<p>The invoice is <i>attached</i>.</p>", "text/html")
    message.attach("invoice-1001.pdf", b"%PDF-1.4 fake invoice", "application/pdf")
    return HttpResponse(f"sent {message.send()}")


def contact(request: HttpRequest) -> HttpResponse:
    """Django's documented contact form: a header-injection attempt is a ValueError (Django
    6.1 dropped BadHeaderError for ValueError; Django 5.2's BadHeaderError is a ValueError)."""
    try:
        send_mail(request.POST["subject"], request.POST["message"], None, ["admin@example.com"])
    except ValueError:
        return HttpResponseBadRequest("Invalid header found.")
    return HttpResponse("thanks")
