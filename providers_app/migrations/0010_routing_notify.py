"""The routing trigger also sends a PostgreSQL notification (see engine/routing.py).

`pg_notify` is delivered when the writing transaction commits, and several
notifications of one transaction with the same payload arrive as one. SQLite has
no notifications: there every request reads the version row.
"""

from django.db import migrations

VERSION_TABLE = "providers_app_routingversion"
CHANNEL = "fallback_routing"

BUMP = (
    f"INSERT INTO {VERSION_TABLE} (id, version) VALUES (1, 1) "
    f"ON CONFLICT (id) DO UPDATE SET version = {VERSION_TABLE}.version + 1"
)


def _function(notify: bool) -> str:
    extra = f" PERFORM pg_notify('{CHANNEL}', '');" if notify else ""
    return (
        "CREATE OR REPLACE FUNCTION providers_app_routing_version_bump() RETURNS trigger "
        f"LANGUAGE plpgsql AS $$ BEGIN {BUMP};{extra} RETURN NULL; END $$"
    )


def notify_on(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(_function(notify=True))


def notify_off(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(_function(notify=False))


class Migration(migrations.Migration):
    dependencies = [
        ("providers_app", "0009_routing_version"),
    ]

    operations = [migrations.RunPython(notify_on, notify_off)]
