"""The routing version row and the triggers that bump it (see models.RoutingVersion).

Triggers rather than application code, so that no write path can forget it:
`queryset.update()`, `bulk_update()` (the admin reorder), raw SQL and imports
bump it exactly like a model save. The bump is an upsert, so a test database
flushed by TRUNCATE gets its row back on the next change.
"""

from django.db import migrations, models

WATCHED = ("providers_app_provider", "providers_app_breakerstate")
VERSION_TABLE = "providers_app_routingversion"
OPERATIONS = ("INSERT", "UPDATE", "DELETE")

BUMP = (
    f"INSERT INTO {VERSION_TABLE} (id, version) VALUES (1, 1) "
    f"ON CONFLICT (id) DO UPDATE SET version = {VERSION_TABLE}.version + 1"
)


def _sqlite(table: str, operation: str) -> tuple[str, str]:
    name = f"{table}_routing_version_{operation.lower()}"
    return (
        f"CREATE TRIGGER {name} AFTER {operation} ON {table} FOR EACH ROW BEGIN {BUMP}; END",
        f"DROP TRIGGER IF EXISTS {name}",
    )


def _postgresql(table: str) -> tuple[str, str]:
    name = f"{table}_routing_version"
    return (
        f"CREATE TRIGGER {name} AFTER INSERT OR UPDATE OR DELETE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION providers_app_routing_version_bump()",
        f"DROP TRIGGER IF EXISTS {name} ON {table}",
    )


PG_FUNCTION = (
    "CREATE OR REPLACE FUNCTION providers_app_routing_version_bump() RETURNS trigger "
    f"LANGUAGE plpgsql AS $$ BEGIN {BUMP}; RETURN NULL; END $$"
)


def _statements(vendor: str) -> list[tuple[str, str]]:
    if vendor == "sqlite":
        return [_sqlite(table, op) for table in WATCHED for op in OPERATIONS]
    if vendor == "postgresql":
        return [
            (PG_FUNCTION, "DROP FUNCTION IF EXISTS providers_app_routing_version_bump()"),
            *(_postgresql(table) for table in WATCHED),
        ]
    raise NotImplementedError(f"routing version triggers for {vendor} are not written yet")


def create_triggers(apps, schema_editor) -> None:
    for create, _ in _statements(schema_editor.connection.vendor):
        schema_editor.execute(create)
    schema_editor.execute(f"INSERT INTO {VERSION_TABLE} (id, version) VALUES (1, 0)")


def drop_triggers(apps, schema_editor) -> None:
    for _, drop in reversed(_statements(schema_editor.connection.vendor)):
        schema_editor.execute(drop)


class Migration(migrations.Migration):
    dependencies = [
        ("providers_app", "0008_dashboard_latency"),
    ]

    operations = [
        migrations.CreateModel(
            name="RoutingVersion",
            fields=[
                (
                    "id",
                    models.PositiveSmallIntegerField(default=1, primary_key=True, serialize=False),
                ),
                ("version", models.BigIntegerField(default=0, verbose_name="version")),
            ],
        ),
        migrations.RunPython(create_triggers, drop_triggers),
    ]
