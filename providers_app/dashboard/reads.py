"""The failover dashboard's data: what happened over the last 15 minutes (the
live view, 15 s bins), hour (30 s bins), 6 hours, 24 hours or 7 days.

Sources, all in the database so every process draws the same picture:

- failovers per time bin by reason: `FailoverEvent` rows of kind `failover`
  (their `count`, summed per bin and reason);
- event totals by kind, whatever the kind (a kind added later shows up too);
- calls, success rate and latency per provider and bin: `call_stats_by_span`,
  final five-minute `CallRollup` rows merged with the one-second `CallBucket`
  counters not rolled up yet, so the figures are as fresh as the event log;
  read as `CallStats`, the same definition /api/status and /metrics use;
- per route: the failovers, continuations and all-failed requests its events
  name, for every route (a route with none shows zeros);
- requests as the callers saw them (`RequestStats`) and each provider's
  attempts, failures, failed attempts by reason (`failures_by_reason`),
  requests it gave up on by reason (its `failover`
  events), skips and share of the answers: `selectors.call_stats` defines each;
- annotations: breaker transitions and manual events (operator actions,
  reorders, configuration changes), each with its time, who and its id;
- breaker state over time: the transition events (`breaker_opened`,
  `breaker_half_open`, `breaker_closed`) and the operator's `manual` events
  that set a state (reset, force open, force closed, never trip).

Traffic is keyed by provider id (`ProviderTraffic.provider`); another dimension
(a route) would key `call_stats_by_span` and `ProviderTraffic` the same way.

Plain data only: `dashboard.charts` turns it into SVG geometry and colours.
"""

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.db.models import Q, Sum
from django.db.models.functions import TruncHour, TruncMinute, TruncSecond

from ..models import BreakerState, FailoverEvent, Route
from ..selectors.call_stats import (
    CallStats,
    RequestStats,
    call_stats_by_span,
    failures_by_reason,
    floor_to,
)
from ..selectors.providers import ProviderStatus, provider_status_list

Kind = FailoverEvent.Kind
State = BreakerState.State
Manual = FailoverEvent.ManualReason


@dataclass(frozen=True)
class Range:
    """A time range the dashboard offers: how far back, and how wide one bin is."""

    key: str
    label: str
    span: timedelta
    # a multiple of the rollup period that divides a day, or finer over at most
    # FINE_HISTORY (the one-second buckets still exist)
    bin: timedelta


RANGES: dict[str, Range] = {
    r.key: r
    for r in (
        # Live: 15 s bins, so a 30 s outage is two bins (one-second buckets only).
        Range("15m", "Last 15 minutes", timedelta(minutes=15), timedelta(seconds=15)),
        # 30 s bins: a 30 s outage is still a bin an hour later (buckets kept FINE_HISTORY).
        Range("1h", "Last hour", timedelta(hours=1), timedelta(seconds=30)),
        Range("6h", "Last 6 hours", timedelta(hours=6), timedelta(minutes=15)),
        Range("24h", "Last 24 hours", timedelta(hours=24), timedelta(hours=1)),
        Range("7d", "Last 7 days", timedelta(days=7), timedelta(hours=1)),
    )
}
DEFAULT_RANGE = "15m"

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
    bins: tuple[datetime, ...]  # the start of each bin, oldest first
    bin: timedelta
    end: datetime  # now

    @property
    def start(self) -> datetime:
        return self.bins[0]

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds() or 1.0

    def bin_of(self, moment: datetime) -> datetime:
        return floor_to(moment, self.bin)


def range_for(range_key: str | None) -> Range:
    """The range a request names; the default for anything unknown."""
    return RANGES.get(range_key or "", RANGES[DEFAULT_RANGE])


def dashboard_window(range_key: str, *, now: datetime) -> Window:
    """The range's bins, ending with the current (partial) one."""
    chosen = range_for(range_key)
    last = floor_to(now, chosen.bin)
    count = round(chosen.span / chosen.bin)
    bins = tuple(last - chosen.bin * (count - 1 - i) for i in range(count))
    return Window(chosen.key, bins, chosen.bin, now)


def failovers_by_bin(window: Window, kind: str = Kind.FAILOVER) -> dict[datetime, Counter]:
    """{bin start: Counter(reason -> events)} of one kind (failovers) over the window."""
    if window.bin >= timedelta(hours=1):
        truncate = TruncHour
    else:
        truncate = TruncMinute if window.bin >= timedelta(minutes=1) else TruncSecond
    rows = (
        FailoverEvent.objects.filter(
            kind=kind, created_at__gte=window.start, created_at__lte=window.end
        )
        .annotate(moment=truncate("created_at", tzinfo=UTC))
        .values("moment", "reason")
        .annotate(total=Sum("count"))
    )
    result: dict[datetime, Counter] = defaultdict(Counter)
    for row in rows:
        result[window.bin_of(row["moment"])][row["reason"] or "unknown"] += row["total"]
    return result


@dataclass
class ProviderTraffic:
    """One provider's calls over the whole window and per bin."""

    provider: ProviderStatus
    total: CallStats = field(default_factory=CallStats)
    by_bin: dict[datetime, CallStats] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.provider.name

    @property
    def enabled(self) -> bool:
        return self.provider.enabled


def traffic_by_provider(window: Window, providers: list[ProviderStatus]) -> list[ProviderTraffic]:
    by_id = {p.id: ProviderTraffic(p) for p in providers}
    spans = call_stats_by_span(start=window.start, end=window.end, span=window.bin)
    for (provider_id, start), stats in spans.items():
        entry = by_id.get(provider_id)
        if entry is None:
            continue
        entry.total += stats
        entry.by_bin[start] = stats
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


# The totals always shown (0 included), in this order, with their wording; any
# other kind with events in the window follows under its own label.
HEADLINE_TOTALS: dict[str, str] = {
    Kind.FAILOVER: "failovers",
    Kind.ALL_FAILED: "requests no provider answered",
    Kind.BREAKER_OPENED: "breaker openings",
    Kind.HEALTH_FAILED: "health-check failure streaks",
    Kind.MANUAL: "manual actions",
}


@dataclass(frozen=True)
class KindTotal:
    kind: str
    label: str
    count: int


def _label_of(kind: str) -> str:
    if kind in HEADLINE_TOTALS:
        return HEADLINE_TOTALS[kind]
    labels = dict(Kind.choices)
    return str(labels.get(kind, kind.replace("_", " "))).lower()


def totals(window: Window) -> tuple[KindTotal, ...]:
    """Events in the window by kind (their `count` summed)."""
    rows = (
        FailoverEvent.objects.filter(created_at__gte=window.start, created_at__lte=window.end)
        .values("kind")
        .annotate(total=Sum("count"))
        .order_by()
    )
    by_kind = {row["kind"]: row["total"] for row in rows}
    others = sorted(k for k, count in by_kind.items() if count and k not in HEADLINE_TOTALS)
    return tuple(
        KindTotal(kind, _label_of(kind), by_kind.get(kind, 0))
        for kind in (*HEADLINE_TOTALS, *others)
    )


# The events a route's row counts, in column order.
ROUTE_EVENT_KINDS = (Kind.FAILOVER, Kind.CONTINUATION, Kind.ALL_FAILED)


@dataclass(frozen=True)
class RouteEvents:
    route: str
    failovers: int
    continuations: int
    all_failed: int


def events_by_route(window: Window) -> list[RouteEvents]:
    """Each route's failovers, continuations and all-failed requests in the window
    (their `count` summed): every configured route, then any other name that
    events still carry (a route renamed or deleted since)."""
    rows = (
        FailoverEvent.objects.filter(
            created_at__gte=window.start,
            created_at__lte=window.end,
            kind__in=ROUTE_EVENT_KINDS,
        )
        .exclude(route="")
        .values("route", "kind")
        .annotate(total=Sum("count"))
        .order_by()
    )
    counts: dict[str, Counter] = defaultdict(Counter)
    for row in rows:
        counts[row["route"]][row["kind"]] += row["total"]
    configured = list(Route.objects.order_by("name").values_list("name", flat=True))
    names = configured + sorted(set(counts) - set(configured))
    return [
        RouteEvents(
            name,
            counts[name][Kind.FAILOVER],
            counts[name][Kind.CONTINUATION],
            counts[name][Kind.ALL_FAILED],
        )
        for name in names
    ]


def gave_up_by_provider(window: Window) -> dict[int, Counter]:
    """{provider id: Counter(reason -> requests)}: the requests each provider did
    not answer and passed on (or failed), from its `failover` events."""
    rows = (
        FailoverEvent.objects.filter(
            kind=Kind.FAILOVER, created_at__gte=window.start, created_at__lte=window.end
        )
        .exclude(provider=None)
        .values("provider_id", "reason")
        .annotate(total=Sum("count"))
        .order_by()
    )
    result: dict[int, Counter] = defaultdict(Counter)
    for row in rows:
        result[row["provider_id"]][row["reason"] or "unknown"] += row["total"]
    return result


def all_failed_count(window: Window) -> int:
    """Requests no provider answered (the `all_failed` events' count summed)."""
    total = FailoverEvent.objects.filter(
        kind=Kind.ALL_FAILED, created_at__gte=window.start, created_at__lte=window.end
    ).aggregate(total=Sum("count"))["total"]
    return total or 0


# The events drawn on the charts at their time: breaker transitions and whatever
# an operator did (actions, reorders, configuration changes).
ANNOTATION_KINDS = (
    Kind.BREAKER_OPENED,
    Kind.BREAKER_HALF_OPEN,
    Kind.BREAKER_CLOSED,
    Kind.MANUAL,
)
# Enough to mark a busy week; the newest are kept.
MAX_ANNOTATIONS = 200


@dataclass(frozen=True)
class Annotation:
    event_id: int
    at: datetime
    kind: str
    reason: str
    provider: str
    actor: str  # who, for manual events ("" otherwise)
    detail: str


def annotations(window: Window) -> list[Annotation]:
    """Breaker transitions and manual events in the window, oldest first."""
    rows = (
        FailoverEvent.objects.filter(
            kind__in=ANNOTATION_KINDS, created_at__gte=window.start, created_at__lte=window.end
        )
        .select_related("provider", "actor")
        .order_by("-created_at", "-id")[:MAX_ANNOTATIONS]
    )
    found = [
        Annotation(
            event_id=event.pk,
            at=event.created_at,
            kind=event.kind,
            reason=event.reason,
            provider=event.provider.name if event.provider else "",
            actor=event.actor.get_username() if event.actor else "",
            detail=event.detail,
        )
        for event in rows
    ]
    return found[::-1]


@dataclass(frozen=True)
class DashboardData:
    window: Window
    totals: tuple[KindTotal, ...]
    routes: list[RouteEvents]
    traffic: list[ProviderTraffic]
    failovers_by_bin: dict[datetime, Counter]
    # (provider, its current state, its states over the window), in route order
    timelines: list[tuple[ProviderStatus, str, list[Segment]]]
    requests: RequestStats = field(default_factory=RequestStats)
    all_failed_by_bin: dict[datetime, int] = field(default_factory=dict)
    gave_up: dict[int, Counter] = field(default_factory=dict)
    failures_by_reason: dict[int, Counter] = field(default_factory=dict)
    annotations: list[Annotation] = field(default_factory=list)


def dashboard_data(*, range_key: str = DEFAULT_RANGE, now: datetime) -> DashboardData:
    window = dashboard_window(range_key, now=now)
    providers = provider_status_list(now=now)
    timelines = [(p, p.state, breaker_segments(window, p.id, p.state)) for p in providers]
    traffic = traffic_by_provider(window, providers)
    every_call = sum((t.total for t in traffic), CallStats())
    return DashboardData(
        window=window,
        totals=totals(window),
        routes=events_by_route(window),
        traffic=traffic,
        failovers_by_bin=failovers_by_bin(window),
        timelines=timelines,
        requests=RequestStats.of(every_call, all_failed=all_failed_count(window)),
        gave_up=gave_up_by_provider(window),
        failures_by_reason=failures_by_reason(start=window.start, end=window.end),
        all_failed_by_bin={
            start: sum(counts.values())
            for start, counts in failovers_by_bin(window, Kind.ALL_FAILED).items()
        },
        annotations=annotations(window),
    )
