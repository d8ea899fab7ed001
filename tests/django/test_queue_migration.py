"""``manage.py migrate`` creates mailout's queue tables in the project's database (migration
``mailout/0001_queue``), as ``mailout queue migrate`` would, and takes them away again."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connections
from django.db.migrations.recorder import MigrationRecorder

from mailout.django.schema import TABLES
from tests.django.queue_db import VENDORS, database


def tables(alias: str) -> set[str]:
    with connections[alias].cursor() as cursor:
        return {
            name
            for name in connections[alias].introspection.table_names(cursor)
            if name.startswith("mailout_queue_")
        }


def schema_version(alias: str) -> str:
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT value FROM mailout_queue_meta WHERE name = 'schema_version'")
        return str(cursor.fetchone()[0])


@pytest.mark.parametrize("vendor", VENDORS)
def test_migrate_creates_the_queue_tables_and_zero_drops_them(vendor: str, tmp_path: Path) -> None:
    with database(vendor, tmp_path) as alias:
        assert tables(alias) == set()
        call_command("migrate", "mailout", "0001", database=alias, verbosity=0)
        assert tables(alias) == set(TABLES[vendor])
        assert schema_version(alias) == "1"
        applied = MigrationRecorder(connections[alias]).applied_migrations()
        assert ("mailout", "0001_queue") in applied

        # The schema is the one mailout's own storages use: they open it as it is.
        if vendor == "sqlite":
            from mailout.queue.storage.sqlite import SQLiteStorage

            SQLiteStorage(connections[alias].settings_dict["NAME"]).close()
        else:
            from mailout.queue.storage.postgres import PostgresStorage
            from tests.queue.pg import SERVER

            options = connections[alias].settings_dict["OPTIONS"]
            schema = options["application_name"]
            store = PostgresStorage(f"{SERVER}?schema={schema}")
            assert store.migrate() == []  # nothing left to do: the same versions
            store.close()

        call_command("migrate", "mailout", "zero", database=alias, verbosity=0)
        assert tables(alias) == set()
        assert ("mailout", "0001_queue") not in MigrationRecorder(
            connections[alias]
        ).applied_migrations()


@pytest.mark.parametrize("vendor", VENDORS)
def test_migrate_keeps_a_queue_mailout_made_first(vendor: str, tmp_path: Path) -> None:
    """A queue the project ran before (``mailout queue migrate`` on the same database) keeps
    its mail: the migration finds the tables and the version there and adds nothing."""
    with database(vendor, tmp_path) as alias:
        with connections[alias].cursor() as cursor:
            cursor.execute(
                "CREATE TABLE mailout_queue_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)"
            )
            cursor.execute("INSERT INTO mailout_queue_meta VALUES ('schema_version', '1')")
            cursor.execute("INSERT INTO mailout_queue_meta VALUES ('kept', 'yes')")
        call_command("migrate", "mailout", "0001", database=alias, verbosity=0)
        with connections[alias].cursor() as cursor:
            cursor.execute("SELECT value FROM mailout_queue_meta WHERE name = 'kept'")
            assert cursor.fetchone() == ("yes",)
