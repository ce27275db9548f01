"""A provider, its breaker and its recent calls: the one read model behind
/api/status, /v1/models, the /metrics gauges, the dashboard and health checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Q

from ..models import CallBucket, FailoverEvent, Provider, RequestTrace, RouteMember
from .call_stats import CallStats, call_stats_by_provider, call_stats_total

STATUS_WINDOW = timedelta(minutes=5)


@dataclass(frozen=True)
class ProviderStatus:
    id: int
    name: str
    kind: str
    model: str
    enabled: bool
    state: str
    open_until: datetime | None
    cooldown_until: datetime | None
    consecutive_failures: int
    health_failures: int  # failed health checks in a row (0 after a pass or before any)
    recent: CallStats
    # The operator's capability switches (None: the default for the kind and
    # model, which the engine knows: engine/capabilities.py).
    capability_overrides: dict[str, bool | None] = field(default_factory=dict)
    # The routes the provider is in, each with its place in the route's order (1 first).
    routes: dict[str, int] = field(default_factory=dict)
    base_url: str = ""
    # The operator's (or learned) continuation dialect; "" is the default.
    continuation: str = ""


_STATUS_COLUMNS = {
    "id": "id",
    "name": "name",
    "kind": "kind",
    "model": "model",
    "enabled": "enabled",
    "state": "breaker__state",
    "open_until": "breaker__open_until",
    "cooldown_until": "breaker__cooldown_until",
    "consecutive_failures": "breaker__consecutive_failures",
    "health_failures": "health_schedule__consecutive_failures",
    "base_url": "base_url",
    "continuation": "continuation",
}
_CAPABILITY_COLUMNS = {
    "tools": "supports_tools",
    "structured_output": "supports_structured_output",
    "images": "supports_images",
}


def provider_status_list(
    *, now: datetime, window: timedelta = STATUS_WINDOW, route_names: frozenset[str] | None = None
) -> list[ProviderStatus]:
    """Every provider (in the default route's order, the others after, as added)
    with its breaker, recent calls and place in each route: three queries.
    `route_names`: only the providers of these routes (None: every provider).

    Counters are buffered per process and flushed every FALLBACK_COUNTER_FLUSH_S,
    so the newest successes may be a couple of seconds late; failures are not.
    """
    since = now - window
    recent = call_stats_by_provider(CallBucket.objects.filter(bucket_start__gt=since))
    places = route_places(route_names=route_names)
    providers = Provider.objects.in_route_order()
    if route_names is not None:
        providers = providers.filter(pk__in=list(places))
    rows = providers.values(*_STATUS_COLUMNS.values(), *_CAPABILITY_COLUMNS.values())
    statuses = []
    for row in rows:
        values = {attribute: row[column] for attribute, column in _STATUS_COLUMNS.items()}
        # A provider not yet health-checked may have no schedule row: no failed checks.
        values["health_failures"] = values["health_failures"] or 0
        overrides = {name: row[column] for name, column in _CAPABILITY_COLUMNS.items()}
        statuses.append(
            ProviderStatus(
                **values,
                recent=recent.get(row["id"], CallStats()),
                capability_overrides=overrides,
                routes=places.get(row["id"], {}),
            )
        )
    return statuses


def route_places(*, route_names: frozenset[str] | None = None) -> dict[int, dict[str, int]]:
    """Provider id -> {route name: place in its order (1 first)}, for every route
    (or only `route_names`). Disabled providers keep their place: enabling one puts
    it back there."""
    members = RouteMember.objects.order_by("route__name", "order", "id")
    if route_names is not None:
        members = members.filter(route__name__in=route_names)
    places: dict[int, dict[str, int]] = {}
    counts: dict[str, int] = {}
    for provider_id, route_name in members.values_list("provider_id", "route__name"):
        counts[route_name] = counts.get(route_name, 0) + 1
        places.setdefault(provider_id, {})[route_name] = counts[route_name]
    return places


def provider_breaker_state(*, provider_id: int) -> str:
    """The breaker state of one provider (every provider has its breaker row)."""
    return Provider.objects.values_list("breaker__state", flat=True).get(pk=provider_id)


def provider_call_stats(*, provider_id: int, since: datetime) -> CallStats:
    """One provider's calls in the one-second buckets that started at or after `since`."""
    return call_stats_total(
        CallBucket.objects.filter(provider_id=provider_id, bucket_start__gte=since)
    )


def provider_last_continuation_off(*, provider_id: int) -> FailoverEvent | None:
    """The newest event that switched this provider's continuation off, if any."""
    return (
        FailoverEvent.objects.filter(
            provider_id=provider_id, kind=FailoverEvent.Kind.CONTINUATION_OFF
        )
        .order_by("-created_at", "-id")
        .first()
    )


def provider_recent_events(*, provider_id: int, limit: int = 10) -> list[FailoverEvent]:
    """The provider's latest events, newest first: failovers from or to it, its
    breaker transitions, health-check streaks and operator actions."""
    return list(
        FailoverEvent.objects.filter(Q(provider_id=provider_id) | Q(to_provider_id=provider_id))
        .select_related("provider", "to_provider", "actor")
        .order_by("-created_at", "-id")[:limit]
    )


@dataclass(frozen=True)
class RecentAttempt:
    """One attempt on a provider, from a kept request trace's steps."""

    at: datetime  # when the attempt started
    outcome: str  # the step's outcome: success, failure, interrupted
    reason: str  # a Reason value for a failure ("" for a success)
    status: int | None
    request_id: str


def provider_recent_attempts(
    *, provider_name: str, limit: int = 10, scan: int = 200
) -> list[RecentAttempt]:
    """The provider's latest attempts, newest first, from the last `scan` request
    traces (every request that retried, failed over or failed is traced; answers
    at the first try are sampled, so a healthy provider shows fewer of them).
    Skips made no call and are not attempts."""
    attempts: list[RecentAttempt] = []
    traces = RequestTrace.objects.order_by("-created_at", "-id").only(
        "created_at", "request_id", "steps"
    )[:scan]
    for trace in traces:
        steps = [
            step
            for step in trace.steps or []
            if step.get("provider") == provider_name and step.get("outcome") != "skipped"
        ]
        for step in reversed(steps):
            attempts.append(
                RecentAttempt(
                    at=trace.created_at + timedelta(milliseconds=step.get("started_ms") or 0),
                    outcome=step.get("outcome") or "",
                    reason=step.get("reason") or "",
                    status=step.get("status"),
                    request_id=trace.request_id,
                )
            )
        if len(attempts) >= limit:
            break
    return attempts[:limit]
