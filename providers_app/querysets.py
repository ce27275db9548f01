"""Query sets: reusable filters, no side effects."""

from django.db import models
from django.db.models import Case, Count, F, OuterRef, Q, Subquery, When
from django.db.models.functions import Coalesce


class ProviderQuerySet(models.QuerySet):
    def enabled(self) -> "ProviderQuerySet":
        return self.filter(enabled=True)

    def in_added_order(self) -> "ProviderQuerySet":
        """The order providers were added in: the implicit route's, while no route exists."""
        return self.order_by("id")

    def in_route_order(self, route_id: int | None = None) -> "ProviderQuerySet":
        """Providers in a route's order (`route_id`; None: the default route), each
        annotated with its `route_position` (0 first, counted: whatever numbers the
        members' `order` holds); providers outside the route come after, in the
        order they were added, with `route_position` None.

        The route's order is its members' (order, id), exactly as routing reads it.
        """
        member_model = self.model._meta.get_field("route_members").related_model
        members = member_model.objects.all()
        if route_id is None:
            members = members.filter(route__is_default=True)
        else:
            members = members.filter(route_id=route_id)
        mine = members.filter(provider=OuterRef("pk"))
        ahead = (
            members.filter(
                Q(order__lt=OuterRef("route_member_order"))
                | Q(order=OuterRef("route_member_order"), id__lt=OuterRef("route_member_id"))
            )
            .order_by()
            .values("route_id")
            .annotate(ahead=Count("id"))
            .values("ahead")
        )
        return (
            self.annotate(
                route_member_id=Subquery(mine.values("id")[:1]),
                route_member_order=Subquery(mine.values("order")[:1]),
            )
            .annotate(
                route_position=Case(
                    When(route_member_id__isnull=True, then=None),
                    default=Coalesce(Subquery(ahead), 0),
                    output_field=models.IntegerField(),
                )
            )
            .order_by(F("route_position").asc(nulls_last=True), "id")
        )
