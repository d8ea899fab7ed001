"""mailout's queue tables (``mailout_queue_*``) in the project's database, for ``EMAIL_QUEUE_URL
= "django"``: the same schema ``mailout queue migrate`` creates, from mailout's own SQL
(mailout.django.schema). Reversible: migrating back to ``zero`` drops the tables."""

from django.db import migrations  # type: ignore[import-untyped]

from mailout.django.schema import create_tables, drop_tables


class Migration(migrations.Migration):  # type: ignore[misc]
    initial = True
    dependencies: list[tuple[str, str]] = []
    operations = [migrations.RunPython(create_tables, drop_tables, elidable=False)]
