"""Named routes (Route, RouteMember), ClientKey.routes and FailoverEvent.route.

The route tables feed the routing snapshot, so they bump the routing version
exactly like Provider and BreakerState (migration `routing_version`; on
PostgreSQL the same trigger function, which also notifies).
"""

import django.db.models.deletion
from django.db import migrations, models


WATCHED = ("providers_app_route", "providers_app_routemember")
VERSION_TABLE = "providers_app_routingversion"
OPERATIONS = ("INSERT", "UPDATE", "DELETE")
BUMP = (
    f"INSERT INTO {VERSION_TABLE} (id, version) VALUES (1, 1) "
    f"ON CONFLICT (id) DO UPDATE SET version = {VERSION_TABLE}.version + 1"
)


def _statements(vendor: str) -> list[tuple[str, str]]:
    if vendor == "sqlite":
        statements = []
        for table in WATCHED:
            for operation in OPERATIONS:
                name = f"{table}_routing_version_{operation.lower()}"
                statements.append(
                    (
                        f"CREATE TRIGGER {name} AFTER {operation} ON {table} "
                        f"FOR EACH ROW BEGIN {BUMP}; END",
                        f"DROP TRIGGER IF EXISTS {name}",
                    )
                )
        return statements
    if vendor == "postgresql":
        # The function (bump + notify) exists since migrations routing_version/routing_notify.
        return [
            (
                f"CREATE TRIGGER {table}_routing_version AFTER INSERT OR UPDATE OR DELETE "
                f"ON {table} FOR EACH ROW EXECUTE FUNCTION providers_app_routing_version_bump()",
                f"DROP TRIGGER IF EXISTS {table}_routing_version ON {table}",
            )
            for table in WATCHED
        ]
    raise NotImplementedError(f"routing version triggers for {vendor} are not written yet")


def create_triggers(apps, schema_editor) -> None:
    for create, _ in _statements(schema_editor.connection.vendor):
        schema_editor.execute(create)


def drop_triggers(apps, schema_editor) -> None:
    for _, drop in reversed(_statements(schema_editor.connection.vendor)):
        schema_editor.execute(drop)


class Migration(migrations.Migration):
    dependencies = [
        ("providers_app", "0011_continuation_event"),
    ]

    operations = [
        migrations.CreateModel(
            name="Route",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "name",
                    models.CharField(
                        help_text="What a client sends as `model`, e.g. chat or chat-large.",
                        max_length=100,
                        unique=True,
                        validators=[
                            django.core.validators.RegexValidator(
                                "^[A-Za-z0-9][A-Za-z0-9._:/-]*$",
                                "Letters, digits and . _ : / - (what clients send as model).",
                            )
                        ],
                        verbose_name="name",
                    ),
                ),
                (
                    "is_default",
                    models.BooleanField(
                        default=False,
                        help_text="Serves every `model` that names no route. At most one route.",
                        verbose_name="default route",
                    ),
                ),
                (
                    "deadline_s",
                    models.FloatField(
                        blank=True,
                        help_text="The request deadline on this route. Empty: FALLBACK_DEADLINE_S.",
                        null=True,
                        validators=[
                            django.core.validators.MinValueValidator(0.1),
                            django.core.validators.MaxValueValidator(600),
                        ],
                        verbose_name="deadline (s)",
                    ),
                ),
                (
                    "failover_on_content_filter",
                    models.BooleanField(
                        blank=True,
                        help_text="Try the next provider when one filters the content. Empty: FALLBACK_FAILOVER_ON_CONTENT_FILTER.",
                        null=True,
                        verbose_name="fail over on content filter",
                    ),
                ),
                (
                    "hold_back",
                    models.BooleanField(
                        default=False,
                        help_text="Streams on this route send the answer only once it is complete, so a failure restarts cleanly on the next provider (see docs/clients.md, Hold-back).",
                        verbose_name="hold back streams",
                    ),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True, verbose_name="created")),
                ("updated_at", models.DateTimeField(auto_now=True, verbose_name="updated")),
            ],
            options={
                "ordering": ["name"],
                "permissions": [("reorder_route", "Can reorder the providers of a route")],
            },
        ),
        migrations.AddField(
            model_name="failoverevent",
            name="route",
            field=models.CharField(blank=True, db_index=True, max_length=100, verbose_name="route"),
        ),
        migrations.AddField(
            model_name="clientkey",
            name="routes",
            field=models.ManyToManyField(
                blank=True,
                help_text="The routes this key may use as `model`. Empty: every route.",
                related_name="client_keys",
                to="providers_app.route",
                verbose_name="routes",
            ),
        ),
        migrations.CreateModel(
            name="RouteMember",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "order",
                    models.PositiveIntegerField(db_index=True, default=0, verbose_name="order"),
                ),
                (
                    "provider",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="route_members",
                        to="providers_app.provider",
                    ),
                ),
                (
                    "route",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="members",
                        to="providers_app.route",
                    ),
                ),
            ],
            options={
                "verbose_name": "route member",
                "ordering": ["order", "id"],
            },
        ),
        migrations.AddField(
            model_name="route",
            name="providers",
            field=models.ManyToManyField(
                related_name="routes",
                through="providers_app.RouteMember",
                to="providers_app.provider",
                verbose_name="providers",
            ),
        ),
        migrations.AddConstraint(
            model_name="routemember",
            constraint=models.UniqueConstraint(
                fields=("route", "provider"), name="route_member_unique"
            ),
        ),
        migrations.AddConstraint(
            model_name="route",
            constraint=models.UniqueConstraint(
                condition=models.Q(("is_default", True)),
                fields=("is_default",),
                name="route_one_default",
            ),
        ),
        migrations.RunPython(create_triggers, drop_triggers),
    ]
