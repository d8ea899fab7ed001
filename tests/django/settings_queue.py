"""The test project for a ``manage.py`` subprocess of the queue's tests: settings.py, plus the
databases the test made (``MAILOUT_TEST_DATABASES``, JSON: alias -> settings) and the queue's
settings it passes as ``MAILOUT_TEST_SETTINGS`` (JSON: name -> value)."""

import json
import os

from tests.django.settings import *  # noqa: F403
from tests.django.settings import DATABASES

DATABASES = {**DATABASES, **json.loads(os.environ.get("MAILOUT_TEST_DATABASES", "{}"))}
globals().update(json.loads(os.environ.get("MAILOUT_TEST_SETTINGS", "{}")))
