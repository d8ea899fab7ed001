"""A project's own tests, run by Django's test runner (manage.py test), not by pytest.

With mailout.django configured as the project's mail backend, Django's runner still swaps in
its locmem backend and ``django.core.mail.outbox`` works as always: nothing of mailout's gets in
the way. tests/django/test_app.py runs these in a subprocess.
"""

from django.conf import settings
from django.core import mail
from django.test import SimpleTestCase


class OutboxTests(SimpleTestCase):
    def test_a_view_fills_the_outbox(self) -> None:
        response = self.client.post("/signup/", {"email": "ana@example.com"})
        assert response.content == b"sent 1"
        assert len(mail.outbox) == 1
        assert mail.outbox[0].subject == "Welcome to the shop"
        assert mail.outbox[0].to == ["ana@example.com"]

    def test_an_async_view_fills_the_outbox(self) -> None:
        response = self.client.post("/async-signup/", {"email": "bo@example.com"})
        assert response.content == b"sent 1"
        assert [m.subject for m in mail.outbox] == ["Welcome (async)"]

    def test_the_outbox_is_emptied_between_tests(self) -> None:
        assert mail.outbox == []

    def test_locmem_replaced_mailouts_backend(self) -> None:
        locmem = "django.core.mail.backends.locmem.EmailBackend"
        if hasattr(settings, "MAILERS"):
            assert {m["BACKEND"] for m in settings.MAILERS.values()} == {locmem}
        else:
            assert locmem == settings.EMAIL_BACKEND
