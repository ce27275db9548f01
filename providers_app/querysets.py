"""Query sets: reusable filters, no side effects."""

from django.db import models


class ProviderQuerySet(models.QuerySet):
    def enabled(self) -> "ProviderQuerySet":
        return self.filter(enabled=True)

    def in_priority_order(self) -> "ProviderQuerySet":
        return self.order_by("priority", "id")
