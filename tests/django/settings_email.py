"""The test project configured the older way: EMAIL_BACKEND and the EMAIL_* settings."""

from tests.django.settings import *  # noqa: F403

EMAIL_BACKEND = "mailout.django.EmailBackend"
EMAIL_HOST = "127.0.0.1"
EMAIL_PORT = 9  # discard: nothing listens; tests that send over SMTP pass --settings overrides
EMAIL_POOL_SIZE = 2
