"""The test project configured Django 6.1's way: MAILERS, whose OPTIONS are the whole
configuration (Django 6.1 then refuses the EMAIL_* settings)."""

from tests.django.settings import *  # noqa: F403

MAILERS = {
    "default": {
        "BACKEND": "mailout.django.EmailBackend",
        "OPTIONS": {"host": "127.0.0.1", "port": 9, "pool_size": 2},
    },
    "bulk": {
        "BACKEND": "mailout.django.EmailBackend",
        "OPTIONS": {"host": "127.0.0.1", "port": 9},
    },
}
