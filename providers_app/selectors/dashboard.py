"""The failover dashboard's data: what happened over the last 24 hours or 7 days.

Sources, all in the database so every process draws the same picture:

- failovers per hour by reason: `FailoverEvent` rows of kind `failover`
  (their `count`, summed per hour and reason);
- calls, success rate and p50/p95 latency per provider: `CallRollup` hourly
  rows, rolled up from the one-second `CallBucket` counters every few minutes
  (`housekeeping.call_counters_roll_up`), read as `CallStats`, the same
  definition /api/status and /metrics use;
- breaker state over time: the transition events (`breaker_opened`,
  `breaker_half_open`, `breaker_closed`) and the operator's `manual` events
  that set a state (reset, force open, force closed, never trip).

Plain data only: the admin's `admin_charts` turns it into SVG geometry and colours.
"""

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.db.models import Q, Sum
from django.db.models.functions import TruncHour

from ..models import BreakerState, CallRollup, FailoverEvent
from .call_stats import CallStats, hour_of
from .providers import ProviderStatus, provider_status_list

Kind = FailoverEvent.Kind
State = BreakerState.State
Manual = FailoverEvent.ManualReason

RANGES: dict[str, int] = {"24h": 24, "7d": 24 * 7}  # hours
DEFAULT_RANGE = "24h"

TRANSITION_STATE = {
    Kind.BREAKER_OPENED: State.OPEN,
    Kind.BREAKER_HALF_OPEN: State.HALF_OPEN,
    Kind.BREAKER_CLOSED: State.CLOSED,
}
# The state a manual event leaves, by its reason (engine.breaker's operator functions).
MANUAL_STATE = {
    Manual.RESET: State.CLOSED,
    Manual.FORCE_OPEN: State.FORCED_OPEN,
    Manual.FORCE_CLOSED: State.CLOSED,
    Manual.NEVER_TRIP: State.NEVER_TRIP,
}


@dataclass(frozen=True)
class Window:
    key: str
    hours: tuple[datetime, ...]  # the start of each hourly bin, oldest first
    end: datetime  # now

    @property
    def start(self) -> datetime:
        return self.hours[0]

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds() or 1.0


def dashboard_window(range_key: str, *, now: datetime) -> Window:
    """Hourly bins ending with the current (partial) hour."""
    if range_key not in RANGES:
        range_key = DEFAULT_RANGE
    last = hour_of(now)
    count = RANGES[range_key]
    return Window(
        range_key, tuple(last - timedelta(hours=count - 1 - i) for i in range(count)), now
    )


def failovers_by_hour(window: Window) -> dict[datetime, Counter]:
    """{hour: Counter(reason -> failovers)} over the window."""
    rows = (
        FailoverEvent.objects.filter(
            kind=Kind.FAILOVER, created_at__gte=window.start, created_at__lte=window.end
        )
        .annotate(hour=TruncHour("created_at", tzinfo=UTC))
        .values("hour", "reason")
        .annotate(total=Sum("count"))
    )
    result: dict[datetime, Counter] = defaultdict(Counter)
    for row in rows:
        result[hour_of(row["hour"])][row["reason"] or "unknown"] += row["total"]
    return result


@dataclass
class ProviderTraffic:
    """One provider's calls over the whole window and per hour."""

    provider: ProviderStatus
    total: CallStats = field(default_factory=CallStats)
    hourly: dict[datetime, CallStats] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.provider.name

    @property
    def enabled(self) -> bool:
        return self.provider.enabled


def traffic_by_provider(window: Window, providers: list[ProviderStatus]) -> list[ProviderTraffic]:
    by_id = {p.id: ProviderTraffic(p) for p in providers}
    rows = CallRollup.objects.filter(hour__gte=window.start, hour__lte=window.end)
    for row in rows:
        entry = by_id.get(row.provider_id)
        if entry is None:
            continue
        stats = CallStats.of(row)
        entry.total += stats
        hour = hour_of(row.hour)
        entry.hourly[hour] = entry.hourly.get(hour, CallStats()) + stats
    return list(by_id.values())


@dataclass(frozen=True)
class Segment:
    state: str
    start: datetime
    end: datetime

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


def _state_of(event: FailoverEvent) -> str | None:
    if event.kind in TRANSITION_STATE:
        return TRANSITION_STATE[event.kind]
    if event.kind == Kind.MANUAL:
        return MANUAL_STATE.get(event.reason)
    return None


_STATE_EVENTS = Q(kind__in=list(TRANSITION_STATE)) | Q(
    kind=Kind.MANUAL, reason__in=list(MANUAL_STATE)
)


def breaker_segments(window: Window, provider_id: int, current: str) -> list[Segment]:
    """The breaker's states over the window, from the transition events.

    The state at the start is the one the last earlier event left; with no
    earlier event it is CLOSED (every breaker starts closed) if events follow,
    else the current state, which then held all along.
    """
    events = FailoverEvent.objects.filter(_STATE_EVENTS, provider_id=provider_id)
    before = events.filter(created_at__lt=window.start).order_by("-created_at", "-id").first()
    inside = list(
        events.filter(created_at__gte=window.start, created_at__lte=window.end).order_by(
            "created_at", "id"
        )
    )
    if before is not None:
        state = _state_of(before) or State.CLOSED
    else:
        state = State.CLOSED if inside else current
    segments: list[Segment] = []
    moment = window.start
    for event in inside:
        next_state = _state_of(event)
        if next_state is None or next_state == state:
            continue
        if event.created_at > moment:
            segments.append(Segment(state, moment, event.created_at))
        state, moment = next_state, event.created_at
    segments.append(Segment(state, moment, window.end))
    return segments


@dataclass(frozen=True)
class Totals:
    failovers: int
    all_failed: int
    breaker_opened: int
    health_failed: int
    manual: int


def totals(window: Window) -> Totals:
    rows = (
        FailoverEvent.objects.filter(created_at__gte=window.start, created_at__lte=window.end)
        .values("kind")
        .annotate(total=Sum("count"))
    )
    by_kind = {row["kind"]: row["total"] for row in rows}
    return Totals(
        failovers=by_kind.get(Kind.FAILOVER, 0),
        all_failed=by_kind.get(Kind.ALL_FAILED, 0),
        breaker_opened=by_kind.get(Kind.BREAKER_OPENED, 0),
        health_failed=by_kind.get(Kind.HEALTH_FAILED, 0),
        manual=by_kind.get(Kind.MANUAL, 0),
    )


@dataclass(frozen=True)
class DashboardData:
    window: Window
    totals: Totals
    traffic: list[ProviderTraffic]
    failovers_by_hour: dict[datetime, Counter]
    # (provider, its current state, its states over the window), in priority order
    timelines: list[tuple[ProviderStatus, str, list[Segment]]]
    rolled_up_at: datetime | None


def dashboard_data(*, range_key: str = DEFAULT_RANGE, now: datetime) -> DashboardData:
    window = dashboard_window(range_key, now=now)
    providers = provider_status_list(now=now)
    timelines = [(p, p.state, breaker_segments(window, p.id, p.state)) for p in providers]
    latest = CallRollup.objects.order_by("-updated_at").values_list("updated_at", flat=True)
    return DashboardData(
        window=window,
        totals=totals(window),
        traffic=traffic_by_provider(window, providers),
        failovers_by_hour=failovers_by_hour(window),
        timelines=timelines,
        rolled_up_at=latest.first(),
    )
