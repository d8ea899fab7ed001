"""The Django app: ``INSTALLED_APPS += ["mailout.django"]``, label ``mailout``."""

from __future__ import annotations

from django.apps import AppConfig  # type: ignore[import-untyped]

from mailout.django.conf import use_django_settings


class MailoutConfig(AppConfig):  # type: ignore[misc]
    """mailout in a Django project: ``manage.py mailout`` and mailout reading Django's settings.

    The queue's parts join this app: its models and migrations (``mailout.django.models``,
    ``migrations/``) and its admin (``mailout.django.admin``) are found by Django by name, and
    its signals module is imported in ``ready()``.
    """

    name = "mailout.django"
    label = "mailout"
    verbose_name = "mailout"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # mailout's own API (mailout.send_mail, manage.py mailout send, ...) reads the project's
        # settings from now on, as Django's mail API does.
        use_django_settings()
