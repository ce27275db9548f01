"""One order per route: `Provider.priority` is gone.

A route's order lives only in its members (RouteMember.order). Before this
migration, an installation without any route followed the global priority
order; from now on the implicit route follows the order providers were added
in, so such an installation first gets the default route `fallback` holding
its providers in today's priority order (exactly what migration
`routes_from_priority` did for installations that existed when routes came):
the same provider answers every request before and after.

Reordering is one permission, the route's `reorder_route`, on the Providers
page and on a route's page alike: `reorder_provider` goes, and whoever held it
(user or group) holds `reorder_route`.

A client key limited to routes says so in its own column
(`ClientKey.limited_to_routes`), so deleting its last route leaves it limited to
nothing (refused everywhere) instead of opening every route to it.

Reversed, priorities come back from the default route's order (then every other
provider, in the order they were added).
"""

from django.db import migrations, models

DEFAULT_ROUTE = "fallback"


def priority_order_to_default_route(apps, schema_editor) -> None:
    Provider = apps.get_model("providers_app", "Provider")
    Route = apps.get_model("providers_app", "Route")
    RouteMember = apps.get_model("providers_app", "RouteMember")
    if Route.objects.exists():
        return  # routes steer traffic already; priority was ignored
    providers = list(Provider.objects.order_by("priority", "id").values_list("id", flat=True))
    if not providers:
        return
    route = Route.objects.create(name=DEFAULT_ROUTE, is_default=True)
    RouteMember.objects.bulk_create(
        RouteMember(route=route, provider_id=provider_id, order=position)
        for position, provider_id in enumerate(providers)
    )


def default_route_order_to_priority(apps, schema_editor) -> None:
    Provider = apps.get_model("providers_app", "Provider")
    RouteMember = apps.get_model("providers_app", "RouteMember")
    ranked = list(
        RouteMember.objects.filter(route__is_default=True)
        .order_by("order", "id")
        .values_list("provider_id", flat=True)
    )
    rest = Provider.objects.exclude(pk__in=ranked).order_by("id").values_list("id", flat=True)
    for priority, provider_id in enumerate([*ranked, *rest], start=1):
        Provider.objects.filter(pk=provider_id).update(priority=priority)


PROVIDER_TABLE = "providers_app_provider"
VERSION_TABLE = "providers_app_routingversion"
BUMP = (
    f"INSERT INTO {VERSION_TABLE} (id, version) VALUES (1, 1) "
    f"ON CONFLICT (id) DO UPDATE SET version = {VERSION_TABLE}.version + 1"
)


def provider_triggers_again(apps, schema_editor) -> None:
    """SQLite rebuilds a table to drop an indexed column, and the rebuild drops its
    triggers: put back the routing-version triggers of migration `routing_version`
    (PostgreSQL drops the column in place and keeps them)."""
    if schema_editor.connection.vendor != "sqlite":
        return
    for operation in ("INSERT", "UPDATE", "DELETE"):
        name = f"{PROVIDER_TABLE}_routing_version_{operation.lower()}"
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {name}")
        schema_editor.execute(
            f"CREATE TRIGGER {name} AFTER {operation} ON {PROVIDER_TABLE} "
            f"FOR EACH ROW BEGIN {BUMP}; END"
        )


def reorder_permission_to_routes(apps, schema_editor) -> None:
    """Whoever could reorder providers may reorder routes: one order, one permission.
    The old permission row goes, so no screen offers a permission that does nothing."""
    Permission = apps.get_model("auth", "Permission")
    ContentType = apps.get_model("contenttypes", "ContentType")
    old = Permission.objects.filter(
        content_type__app_label="providers_app", codename="reorder_provider"
    ).first()
    if old is None:
        return  # a new installation: post_migrate creates the permissions
    route_type, _ = ContentType.objects.get_or_create(app_label="providers_app", model="route")
    new, _ = Permission.objects.get_or_create(
        content_type=route_type,
        codename="reorder_route",
        defaults={"name": "Can reorder the providers of a route"},
    )
    for group in old.group_set.all():
        group.permissions.add(new)
    for user in old.user_set.all():
        user.user_permissions.add(new)
    old.delete()


def mark_limited_keys(apps, schema_editor) -> None:
    ClientKey = apps.get_model("providers_app", "ClientKey")
    ClientKey.objects.filter(routes__isnull=False).update(limited_to_routes=True)


class Migration(migrations.Migration):
    dependencies = [
        ("providers_app", "0013_routes_from_priority"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.AddField(
            model_name="clientkey",
            name="limited_to_routes",
            field=models.BooleanField(
                default=False,
                help_text="Only the routes listed. Deleting them leaves the key refused everywhere.",
                verbose_name="limited to its routes",
            ),
        ),
        migrations.RunPython(mark_limited_keys, migrations.RunPython.noop),
        migrations.RunPython(priority_order_to_default_route, migrations.RunPython.noop),
        migrations.RunPython(reorder_permission_to_routes, migrations.RunPython.noop),
        migrations.RemoveConstraint(model_name="provider", name="provider_priority_unique"),
        migrations.RunPython(migrations.RunPython.noop, default_route_order_to_priority),
        migrations.RunPython(migrations.RunPython.noop, provider_triggers_again),
        migrations.RemoveField(model_name="provider", name="priority"),
        migrations.RunPython(provider_triggers_again, migrations.RunPython.noop),
        migrations.AlterModelOptions(
            name="provider",
            options={
                "ordering": ["id"],
                "permissions": [
                    (
                        "operate_provider",
                        "Can operate providers (health check, reset, force open or closed, "
                        "never trip, enable, disable)",
                    ),
                    ("use_chat", "Can use the chatbot page (spends provider credit)"),
                ],
            },
        ),
    ]
