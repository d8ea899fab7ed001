"""Django's view of mailout's queue tables (mailout.django.models), for the admin: unmanaged
models, so this migration changes no table; it gives them content types and the permissions
of the admin's actions (retry, hold, release, expire; view and delete are Django's own)."""

import django.db.models.deletion  # type: ignore[import-untyped]
from django.db import migrations, models


class Migration(migrations.Migration):  # type: ignore[misc]
    dependencies = [
        ("mailout", "0001_queue"),
    ]

    operations = [
        migrations.CreateModel(
            name="QueuedMessage",
            fields=[
                ("id", models.BigIntegerField(primary_key=True, serialize=False)),
                ("idempotency_key", models.TextField(null=True)),
                (
                    "state",
                    models.TextField(
                        choices=[
                            ("queued", "queued"),
                            ("deferred", "deferred"),
                            ("sending", "sending"),
                            ("sent", "sent"),
                            ("failed", "failed"),
                            ("held", "held"),
                        ]
                    ),
                ),
                ("mailer", models.TextField()),
                (
                    "priority",
                    models.SmallIntegerField(choices=[(0, "high"), (1, "normal"), (2, "low")]),
                ),
                ("sender", models.TextField()),
                ("recipients", models.TextField()),
                ("pending", models.TextField()),
                ("domain", models.TextField()),
                ("message_id", models.TextField()),
                ("subject", models.TextField()),
                ("size", models.IntegerField()),
                ("metadata", models.TextField()),
                ("created_at", models.FloatField()),
                ("queued_at", models.FloatField()),
                ("due_at", models.FloatField()),
                ("updated_at", models.FloatField()),
                ("attempts", models.IntegerField()),
                ("delivered", models.IntegerField()),
                ("lease_owner", models.TextField(null=True)),
                ("lease_until", models.FloatField(null=True)),
                ("last_reply", models.TextField(null=True)),
                ("reason", models.TextField(null=True)),
            ],
            options={
                "verbose_name": "queued message",
                "db_table": "mailout_queue_message",
                "permissions": [
                    ("retry_queuedmessage", "Can retry queued mail"),
                    ("hold_queuedmessage", "Can hold queued mail"),
                    ("release_queuedmessage", "Can release held mail"),
                    ("expire_queuedmessage", "Can expire queued mail"),
                ],
                "managed": False,
                "default_permissions": ("view", "delete"),
            },
        ),
        migrations.CreateModel(
            name="QueueEvent",
            fields=[
                ("id", models.BigIntegerField(primary_key=True, serialize=False)),
                ("at", models.FloatField()),
                ("attempt", models.IntegerField()),
                ("kind", models.TextField()),
                ("recipient", models.TextField(null=True)),
                ("code", models.IntegerField(null=True)),
                ("enhanced", models.TextField(null=True)),
                ("text", models.TextField()),
                ("relay_id", models.TextField(null=True)),
            ],
            options={
                "db_table": "mailout_queue_event",
                "managed": False,
                "default_permissions": (),
            },
        ),
        migrations.CreateModel(
            name="QueueWorker",
            fields=[
                ("id", models.TextField(primary_key=True, serialize=False)),
                ("host", models.TextField()),
                ("pid", models.IntegerField()),
                ("started_at", models.FloatField()),
                ("seen_at", models.FloatField()),
                ("in_flight", models.IntegerField()),
                ("sent", models.IntegerField()),
                ("deferred", models.IntegerField()),
                ("failed", models.IntegerField()),
            ],
            options={
                "verbose_name": "queue worker",
                "db_table": "mailout_queue_worker",
                "managed": False,
                "default_permissions": ("view",),
            },
        ),
        migrations.CreateModel(
            name="QueuedBody",
            fields=[
                (
                    "message",
                    models.OneToOneField(
                        db_column="message",
                        db_constraint=False,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        primary_key=True,
                        related_name="body",
                        serialize=False,
                        to="mailout.queuedmessage",
                    ),
                ),
                ("data", models.BinaryField()),
            ],
            options={
                "db_table": "mailout_queue_body",
                "managed": False,
                "default_permissions": (),
            },
        ),
    ]
