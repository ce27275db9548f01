"""Route writes: create a route, set its providers in order, reorder it (audited).

A route's members' `order` is the only order there is: the Providers page and
the route's page both write it through here. Every write bumps the routing
version by trigger (migration `routes`), so the next request on any process
follows the new order.
"""

import logging
import uuid
from collections.abc import Mapping, Sequence

from django.db import transaction

from ..engine.events import failover_event_record
from ..engine.routing import IMPLICIT_ROUTE
from ..models import FailoverEvent, Provider, Route, RouteMember

REORDER_REASON = "reordered"
logger = logging.getLogger("providers_app.operator")


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


def route_provider_ids(*, route: Route | None) -> list[int]:
    """A route's providers in its order; `route` None: the implicit route (every
    provider, in the order added), which exists only while no route does."""
    if route is None:
        return list(Provider.objects.in_added_order().values_list("pk", flat=True))
    return list(route.members.order_by("order", "id").values_list("provider_id", flat=True))


def route_reorder(
    *, route: Route | None, positions: Mapping[int, int], actor, request_id: str = ""
) -> tuple[Route, list[str]]:
    """An operator's new order for `route`: `positions` maps provider ids to new
    ranks (any numbers: only their order counts; providers not named keep their
    rank). One audited `manual` event names the acting user, the route and the
    resulting order. Returns the route and its provider names in the new order.

    `route` None is the implicit route (no route exists yet): the new order
    becomes the default route `fallback`, so that traffic follows it.
    """
    request_id = request_id or f"operator-{uuid.uuid4().hex[:16]}"
    with transaction.atomic():
        if route is None and Route.objects.exists():
            raise RouteOrderError("A route exists now: reload the page and choose one.")
        before = route_provider_ids(route=route)
        unknown = set(positions) - set(before)
        if unknown:
            raise RouteOrderError(
                f"Not in route {route.name if route else IMPLICIT_ROUTE}: provider id(s) "
                + ", ".join(str(pk) for pk in sorted(unknown))
            )
        rank = {pk: index for index, pk in enumerate(before, start=1)}
        rank.update(positions)
        # Ties (a partial list next to untouched ranks) keep the moved ones first.
        after = sorted(before, key=lambda pk: (rank[pk], pk not in positions, before.index(pk)))
        if route is None:
            route = Route.objects.create(name=IMPLICIT_ROUTE, is_default=True)
        route_members_set(route=route, providers=after)
        names = dict(Provider.objects.filter(pk__in=after).values_list("pk", "name"))
        order = [names[pk] for pk in after]
        # Filed under the provider that travelled furthest: the one dragged (or moved).
        moved = max(after, key=lambda pk: abs(after.index(pk) - before.index(pk)), default=None)
        failover_event_record(
            kind=FailoverEvent.Kind.MANUAL,
            provider_id=moved,
            reason=REORDER_REASON,
            detail=f"route {route.name}, new order: " + ", ".join(order),
            request_id=request_id,
            actor=actor,
            route=route.name,
        )
    logger.warning(
        "manual_action action=reorder actor=%s request_id=%s route=%s order=%s",
        getattr(actor, "get_username", lambda: actor)(), request_id, route.name, ",".join(order),
    )  # fmt: skip
    return route, order


def route_move(
    *, route: Route | None, provider_id: int, steps: int, actor, request_id: str = ""
) -> tuple[Route, list[str]]:
    """Move one provider `steps` places in the route (negative: towards the top),
    the keyboard alternative to dragging. Moving past either end stops there."""
    pks = route_provider_ids(route=route)
    if provider_id not in pks:
        raise RouteOrderError("This provider is not in the route.")
    start = pks.index(provider_id)
    target = max(0, min(len(pks) - 1, start + steps))
    pks.insert(target, pks.pop(start))
    return route_reorder(
        route=route,
        positions={pk: index for index, pk in enumerate(pks, start=1)},
        actor=actor,
        request_id=request_id,
    )


class RouteOrderError(ValueError):
    """A reorder that does not fit the route as it is now; nothing was changed."""


def route_default_append(*, provider: Provider) -> Route | None:
    """A provider added in the admin joins the default route at its end (so it
    serves, last, as a new user expects). Without a default route it joins none;
    while no route exists, the implicit route holds every provider anyway."""
    route = Route.objects.filter(is_default=True).first()
    if route is None or route.members.filter(provider=provider).exists():
        return None
    last = route.members.order_by("-order").values_list("order", flat=True).first()
    RouteMember.objects.create(route=route, provider=provider, order=(last or 0) + 1)
    return route
