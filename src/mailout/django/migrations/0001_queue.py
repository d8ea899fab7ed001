"""mailout's queue tables (``mailout_queue_*``) in the project's database, for ``EMAIL_QUEUE_URL
= "django"``: the same schema ``mailout queue migrate`` creates, from mailout's own SQL
(mailout.django.schema). Reversible: migrating back to ``zero`` drops the tables.

Not atomic as a whole: SQLite switches to WAL mode (so that a worker reads while the site
writes) only outside a transaction. The tables are created in one transaction all the same.
"""

from django.db import migrations  # type: ignore[import-untyped]

from mailout.django.schema import create_tables, drop_tables, use_wal


class Migration(migrations.Migration):  # type: ignore[misc]
    initial = True
    atomic = False
    dependencies: list[tuple[str, str]] = []
    operations = [
        migrations.RunPython(use_wal, migrations.RunPython.noop, elidable=False),
        migrations.RunPython(create_tables, drop_tables, atomic=True, elidable=False),
    ]
