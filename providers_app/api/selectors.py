"""Read-only queries behind /v1/models and /api/status."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Sum

from ..engine.clock import get_clock
from ..models import CallBucket, Provider

STATUS_WINDOW = timedelta(minutes=5)


def model_list() -> list[dict[str, Any]]:
    """Enabled providers in priority order: what a client may name as `model`."""
    return list(
        Provider.objects.enabled().in_priority_order().values("name", "kind", "model", "created_at")
    )


@dataclass(frozen=True)
class RecentCalls:
    """Calls that reached a provider within the window (skips excluded)."""

    successes: int
    failures: int
    rate_limited: int
    latency_ms_sum: float

    @property
    def calls(self) -> int:
        return self.successes + self.failures + self.rate_limited

    @property
    def success_rate(self) -> float | None:
        return round(self.successes / self.calls, 4) if self.calls else None

    @property
    def mean_latency_ms(self) -> float | None:
        return round(self.latency_ms_sum / self.successes, 1) if self.successes else None


@dataclass(frozen=True)
class ProviderStatus:
    name: str
    kind: str
    model: str
    priority: int
    enabled: bool
    state: str
    open_until: datetime | None
    cooldown_until: datetime | None
    consecutive_failures: int
    recent: RecentCalls


def provider_status_list(*, window: timedelta = STATUS_WINDOW) -> list[ProviderStatus]:
    """Every provider in priority order with its breaker and recent calls: two queries.

    Counters are buffered per process and flushed every FALLBACK_COUNTER_FLUSH_S,
    so the newest successes may be a couple of seconds late; failures are not.
    """
    since = get_clock().now() - window
    recent = {
        row["provider_id"]: row
        for row in CallBucket.objects.filter(bucket_start__gt=since)
        .values("provider_id")
        .annotate(
            successes=Sum("successes"),
            slow_calls=Sum("slow_calls"),
            failures=Sum("failures"),
            rate_limited=Sum("rate_limited"),
            latency_ms_sum=Sum("latency_ms_sum"),
        )
        .order_by()
    }
    rows = Provider.objects.in_priority_order().values(
        "id",
        "name",
        "kind",
        "model",
        "priority",
        "enabled",
        "breaker__state",
        "breaker__open_until",
        "breaker__cooldown_until",
        "breaker__consecutive_failures",
    )
    statuses = []
    for row in rows:
        counts = recent.get(row["id"], {})
        statuses.append(
            ProviderStatus(
                name=row["name"],
                kind=row["kind"],
                model=row["model"],
                priority=row["priority"],
                enabled=row["enabled"],
                state=row["breaker__state"] or "closed",
                open_until=row["breaker__open_until"],
                cooldown_until=row["breaker__cooldown_until"],
                consecutive_failures=row["breaker__consecutive_failures"] or 0,
                recent=RecentCalls(
                    # A slow call still answered: it counts as a success here.
                    successes=(counts.get("successes") or 0) + (counts.get("slow_calls") or 0),
                    failures=counts.get("failures") or 0,
                    rate_limited=counts.get("rate_limited") or 0,
                    latency_ms_sum=counts.get("latency_ms_sum") or 0.0,
                ),
            )
        )
    return statuses
