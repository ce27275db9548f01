"""Route writes: create a route, set its providers in order.

Every write here bumps the routing version by trigger (migration `routes`), so
the next request on any process follows the new route.
"""

from collections.abc import Sequence

from django.db import transaction

from ..models import Provider, Route, RouteMember


@transaction.atomic
def route_create(
    *,
    name: str,
    providers: Sequence[Provider | int] = (),
    is_default: bool = False,
    deadline_s: float | None = None,
    failover_on_content_filter: bool | None = None,
    hold_back: bool = False,
    auto_hold_back: bool = False,
) -> Route:
    """A validated route with `providers` in that order (first answers first)."""
    route = Route(
        name=name,
        is_default=is_default,
        deadline_s=deadline_s,
        failover_on_content_filter=failover_on_content_filter,
        hold_back=hold_back,
        auto_hold_back=auto_hold_back,
    )
    route.full_clean()
    route.save()
    route_members_set(route=route, providers=providers)
    return route


@transaction.atomic
def route_members_set(*, route: Route, providers: Sequence[Provider | int]) -> None:
    """Replace the route's providers with `providers`, in that order."""
    ids = [p.pk if isinstance(p, Provider) else p for p in providers]
    if len(set(ids)) != len(ids):
        raise ValueError(f"route {route.name}: a provider may appear only once")
    RouteMember.objects.filter(route=route).delete()
    RouteMember.objects.bulk_create(
        RouteMember(route=route, provider_id=provider_id, order=position)
        for position, provider_id in enumerate(ids)
    )
