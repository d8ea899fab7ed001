"""The test shop's views, called with Django's test client: mail sent from a request arrives."""

from __future__ import annotations

import asyncio

from django.test import AsyncClient, Client

from tests.conftest import SMTPServer


def test_a_view_sends_with_send_mail(shop_mail: SMTPServer) -> None:
    response = Client().post("/signup/", {"email": "ana@example.com"})
    assert (response.status_code, response.content) == (200, b"sent 1")
    [received] = shop_mail.received
    message = received.message
    assert message["Subject"] == "Welcome to the shop"
    assert message["From"] == "Example Shop <shop@example.com>"
    assert "your account is ready" in message.get_body(("html",)).get_content()


def test_an_async_view_awaits_asend_mail(shop_mail: SMTPServer) -> None:
    response = asyncio.run(AsyncClient().post("/async-signup/", {"email": "bo@example.com"}))
    assert (response.status_code, response.content) == (200, b"sent 1")
    [received] = shop_mail.received
    assert received.rcpt_tos == ["bo@example.com"]
    assert received.message["Subject"] == "Welcome (async)"


def test_a_view_sends_an_attachment(shop_mail: SMTPServer) -> None:
    assert Client().post("/invoice/", {"email": "ana@example.com"}).content == b"sent 1"
    [attachment] = shop_mail.received[0].message.iter_attachments()
    assert attachment.get_filename() == "invoice-1001.pdf"
    assert attachment.get_content() == b"%PDF-1.4 fake invoice"


def test_the_documented_contact_form_refuses_injection(shop_mail: SMTPServer) -> None:
    client = Client()
    bad = client.post("/contact/", {"subject": "Hi\r\nBcc: x@example.com", "message": "m"})
    assert (bad.status_code, bad.content) == (400, b"Invalid header found.")
    good = client.post("/contact/", {"subject": "Hi", "message": "m"})
    assert good.content == b"thanks"
    assert [r.rcpt_tos for r in shop_mail.received] == [["admin@example.com"]]
