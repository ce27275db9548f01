"""The single global order becomes the default route `fallback`.

Every provider joins it in priority order (disabled ones too: routing skips
them while they are disabled, and enabling one puts it back where it was), so
every existing client keeps the answers it had: `model: "fallback"` names the
route, any other name falls through to the default. A database without
providers gets no route, and with no route at all every name keeps following
the global order (engine/routing.py).
"""

from django.db import migrations

DEFAULT_ROUTE = "fallback"


def order_to_default_route(apps, schema_editor) -> None:
    Provider = apps.get_model("providers_app", "Provider")
    Route = apps.get_model("providers_app", "Route")
    RouteMember = apps.get_model("providers_app", "RouteMember")
    providers = list(Provider.objects.order_by("priority", "id").values_list("id", flat=True))
    if not providers or Route.objects.exists():
        return
    route = Route.objects.create(name=DEFAULT_ROUTE, is_default=True)
    RouteMember.objects.bulk_create(
        RouteMember(route=route, provider_id=provider_id, order=position)
        for position, provider_id in enumerate(providers)
    )


def default_route_to_order(apps, schema_editor) -> None:
    # The priorities were never changed; dropping the routes is the whole undo.
    apps.get_model("providers_app", "Route").objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [
        ("providers_app", "0012_routes"),
    ]

    operations = [migrations.RunPython(order_to_default_route, default_route_to_order)]
