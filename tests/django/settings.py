"""A small Django project for mailout.django's tests: a shop that sends mail from its views.

No email settings here: each test picks a style (tests/django/helpers.py): the EMAIL_* settings
(Django <= 6.0) or Django 6.1's MAILERS. settings_email.py and settings_mailers.py are the same
project with one style each, for the commands run in a subprocess (manage.py).
"""

SECRET_KEY = "mailout-tests-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
ROOT_URLCONF = "tests.django.urls"
INSTALLED_APPS = [
    "mailout.django",
    # The queue in Django's admin (tests/django/test_admin*.py).
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.messages",
]
MIDDLEWARE: list[str] = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
# Sessions in signed cookies: the admin's tests need no session table.
SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
USE_TZ = True
USE_I18N = True
TIME_ZONE = "UTC"
DEFAULT_FROM_EMAIL = "Example Shop <shop@example.com>"
SERVER_EMAIL = "errors@example.com"
ADMINS = ["ops@example.com"]
MANAGERS = ["sales@example.com", "boss@example.com"]
