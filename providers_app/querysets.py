"""Query sets: reusable filters, no side effects."""

from django.db import models
from django.db.models import F, OuterRef, Subquery


class ProviderQuerySet(models.QuerySet):
    def enabled(self) -> "ProviderQuerySet":
        return self.filter(enabled=True)

    def in_added_order(self) -> "ProviderQuerySet":
        """The order providers were added in: the implicit route's, while no route exists."""
        return self.order_by("id")

    def in_route_order(self, route_id: int | None = None) -> "ProviderQuerySet":
        """Providers in a route's order (`route_id`; None: the default route), each
        annotated with its `route_position` (0 first); providers outside the route
        come after, in the order they were added, with `route_position` None."""
        member_model = self.model._meta.get_field("route_members").related_model
        members = member_model.objects.filter(provider=OuterRef("pk"))
        if route_id is None:
            members = members.filter(route__is_default=True)
        else:
            members = members.filter(route_id=route_id)
        return self.annotate(route_position=Subquery(members.values("order")[:1])).order_by(
            F("route_position").asc(nulls_last=True), "id"
        )
