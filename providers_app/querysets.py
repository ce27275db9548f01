"""Query sets: reusable filters, no side effects."""

from datetime import timedelta

from django.db import models
from django.utils import timezone


class ProviderQuerySet(models.QuerySet):
    def enabled(self) -> "ProviderQuerySet":
        return self.filter(enabled=True)

    def in_priority_order(self) -> "ProviderQuerySet":
        return self.order_by("priority", "id")


class FailoverEventQuerySet(models.QuerySet):
    def recent(self, *, hours: float = 24) -> "FailoverEventQuerySet":
        return self.filter(created_at__gte=timezone.now() - timedelta(hours=hours))
