"""The failover dashboard: what happened over the last 24 hours or 7 days, as chart data.

Sources, all in the database so every process draws the same picture:

- failovers per hour by reason: `FailoverEvent` rows of kind `failover`
  (their `count`, summed per hour and reason);
- success rate and p50/p95 latency per provider: `CallRollup` hourly rows,
  rolled up from the one-second `CallBucket` counters every few minutes
  (`housekeeping.call_counters_roll_up`). Percentiles come from the rows'
  latency histograms, added up across hours and interpolated within a bucket
  as Prometheus' histogram_quantile does;
- breaker state over time: the transition events (`breaker_opened`,
  `breaker_half_open`, `breaker_closed`) and the operator's `manual` events
  that set a state (reset, force open, force closed, never trip).

Everything here is plain numbers and geometry; the template draws inline SVG
from it, so nothing is fetched and no JavaScript is built.
"""

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.db.models import Q, Sum
from django.db.models.functions import TruncHour

from ..engine.clock import get_clock
from ..models import BreakerState, CallRollup, FailoverEvent, Provider
from .housekeeping import INF, LATENCY_BOUNDS_MS, hour_of

Kind = FailoverEvent.Kind
State = BreakerState.State

RANGES: dict[str, int] = {"24h": 24, "7d": 24 * 7}  # hours
DEFAULT_RANGE = "24h"

STATE_COLOURS: dict[str, str] = {
    State.CLOSED: "#2e7d32",
    State.HALF_OPEN: "#ef6c00",
    State.OPEN: "#c62828",
    State.FORCED_OPEN: "#6a1b9a",
    State.DISABLED: "#616161",
}
PALETTE = (
    "#1565c0",
    "#c62828",
    "#2e7d32",
    "#ef6c00",
    "#6a1b9a",
    "#00838f",
    "#ad1457",
    "#4e342e",
    "#9e9d24",
    "#546e7a",
)
TRANSITION_STATE = {
    Kind.BREAKER_OPENED: State.OPEN,
    Kind.BREAKER_HALF_OPEN: State.HALF_OPEN,
    Kind.BREAKER_CLOSED: State.CLOSED,
}
# The state a manual event leaves, by its reason (services.breaker operator functions).
MANUAL_STATE = {
    "reset": State.CLOSED,
    "force_open": State.FORCED_OPEN,
    "force_closed": State.CLOSED,
    "disable": State.DISABLED,
}

# Chart geometry, in SVG user units.
WIDTH = 960
PLOT_LEFT = 56
PLOT_RIGHT = 12
PLOT_TOP = 10
PLOT_HEIGHT = 160
AXIS_HEIGHT = 22
LANE_HEIGHT = 22
LANE_GAP = 6
PLOT_WIDTH = WIDTH - PLOT_LEFT - PLOT_RIGHT


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------


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


def dashboard_window(range_key: str = DEFAULT_RANGE, *, now: datetime | None = None) -> Window:
    """Hourly bins ending with the current (partial) hour."""
    if range_key not in RANGES:
        range_key = DEFAULT_RANGE
    now = now or get_clock().now()
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


def histogram_quantile(q: float, histogram: Mapping[str, float]) -> float | None:
    """The q-quantile (0..1) of a latency histogram in ms, interpolated linearly
    within its bucket; calls above the last bound report that bound."""
    total = sum(histogram.values())
    if total <= 0:
        return None
    rank = q * total
    seen = 0.0
    lower = 0.0
    for bound in (*LATENCY_BOUNDS_MS, INF):
        count = histogram.get(str(bound), 0)
        if count and seen + count >= rank:
            if bound == INF:
                return float(LATENCY_BOUNDS_MS[-1])
            return lower + (float(bound) - lower) * (rank - seen) / count
        seen += count
        if bound != INF:
            lower = float(bound)
    return float(LATENCY_BOUNDS_MS[-1])


@dataclass
class Traffic:
    """Call counts and a latency histogram, for one hour or a whole window."""

    answered: int = 0
    failures: int = 0
    rate_limited: int = 0
    retries: int = 0
    histogram: Counter = field(default_factory=Counter)

    @property
    def attempts(self) -> int:
        return self.answered + self.failures + self.rate_limited

    @property
    def success_rate(self) -> float | None:
        """Answered attempts out of all attempts that reached the provider, in %."""
        return 100.0 * self.answered / self.attempts if self.attempts else None

    @property
    def p50_ms(self) -> float | None:
        return histogram_quantile(0.5, self.histogram)

    @property
    def p95_ms(self) -> float | None:
        return histogram_quantile(0.95, self.histogram)

    def add(self, row: CallRollup) -> None:
        self.answered += row.successes + row.slow_calls
        self.failures += row.failures
        self.rate_limited += row.rate_limited
        self.retries += row.retries
        self.histogram.update(row.latency_histogram or {})


@dataclass
class ProviderTraffic:
    provider_id: int
    name: str
    enabled: bool
    colour: str
    total: Traffic
    hourly: dict[datetime, Traffic]


def traffic_by_provider(window: Window, providers: Sequence[Provider]) -> list[ProviderTraffic]:
    by_id = {
        p.pk: ProviderTraffic(p.pk, p.name, p.enabled, PALETTE[i % len(PALETTE)], Traffic(), {})
        for i, p in enumerate(providers)
    }
    rows = CallRollup.objects.filter(hour__gte=window.start, hour__lte=window.end)
    for row in rows:
        entry = by_id.get(row.provider_id)
        if entry is None:
            continue
        entry.total.add(row)
        entry.hourly.setdefault(hour_of(row.hour), Traffic()).add(row)
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


def breaker_segments(window: Window, provider: Provider, current: str) -> list[Segment]:
    """The breaker's states over the window, from the transition events.

    The state at the start is the one the last earlier event left; with no
    earlier event it is CLOSED (every breaker starts closed) if events follow,
    else the current state, which then held all along.
    """
    events = provider.events_from.filter(_STATE_EVENTS)
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


# ---------------------------------------------------------------------------
# Geometry for the template
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    colour: str
    hour: datetime
    reason: str
    count: int


@dataclass(frozen=True)
class Tick:
    position: float  # x for time ticks, y for value ticks
    label: str


@dataclass(frozen=True)
class Line:
    label: str
    colour: str
    points: str  # SVG polyline points "x,y x,y"
    dashed: bool = False


@dataclass(frozen=True)
class Dot:
    x: float
    y: float
    colour: str
    title: str
    provider: str
    hour: datetime
    value: float


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    width: float
    height: float
    colour: str
    state: str
    start: datetime
    end: datetime


@dataclass(frozen=True)
class Lane:
    label: str
    y: float
    rects: tuple[Rect, ...]
    current: str


@dataclass(frozen=True)
class Legend:
    label: str
    colour: str
    total: float | None = None


@dataclass(frozen=True)
class Chart:
    height: float
    x_ticks: tuple[Tick, ...] = ()
    y_ticks: tuple[Tick, ...] = ()
    bars: tuple[Bar, ...] = ()
    lines: tuple[Line, ...] = ()
    dots: tuple[Dot, ...] = ()
    lanes: tuple[Lane, ...] = ()
    legend: tuple[Legend, ...] = ()
    empty: bool = False
    width: int = WIDTH
    plot_left: int = PLOT_LEFT
    plot_right: int = WIDTH - PLOT_RIGHT
    axis_y: float = PLOT_TOP + PLOT_HEIGHT

    @property
    def x_label_y(self) -> float:
        return self.axis_y + 15

    @property
    def y_label_x(self) -> int:
        return self.plot_left - 6


def nice_ceiling(value: float) -> float:
    """1, 2, 5 x 10^n at or above `value` (at least 1), for a readable axis."""
    if value <= 1:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * magnitude:
            return float(step * magnitude)
    return float(10 * magnitude)  # pragma: no cover


def _x_of(window: Window, moment: datetime) -> float:
    offset = (moment - window.start).total_seconds() / window.seconds
    return round(PLOT_LEFT + max(0.0, min(1.0, offset)) * PLOT_WIDTH, 2)


def _bin_x(window: Window, index: int) -> tuple[float, float]:
    width = PLOT_WIDTH / len(window.hours)
    return round(PLOT_LEFT + index * width, 2), width


def _y_of(value: float, top: float) -> float:
    return round(PLOT_TOP + PLOT_HEIGHT * (1 - value / top), 2)


def _time_ticks(window: Window, x_of_hour) -> tuple[Tick, ...]:
    every = 3 if len(window.hours) <= 24 else 24
    ticks = []
    for index, hour in enumerate(window.hours):
        if hour.hour % every == 0:
            label = f"{hour:%H:%M}" if every < 24 else f"{hour:%a %d}"
            ticks.append(Tick(x_of_hour(index, hour), label))
    return tuple(ticks)


def _value_ticks(top: float, unit: str, *, whole: bool = False) -> tuple[Tick, ...]:
    """Grid lines at quarters of the axis; for counts (`whole`), only where they
    fall on whole numbers."""
    fractions = [f for f in (0.0, 0.25, 0.5, 0.75, 1.0) if not whole or (top * f).is_integer()]
    return tuple(Tick(_y_of(top * f, top), f"{top * f:g}{unit}") for f in fractions)


def failover_chart(window: Window, by_hour: Mapping[datetime, Counter]) -> Chart:
    reasons = Counter()
    for counts in by_hour.values():
        reasons.update(counts)
    order = [reason for reason, _ in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))]
    colours = {reason: PALETTE[i % len(PALETTE)] for i, reason in enumerate(order)}
    top = nice_ceiling(max((sum(c.values()) for c in by_hour.values()), default=0))
    bars = []
    for index, hour in enumerate(window.hours):
        x, width = _bin_x(window, index)
        stacked = 0
        for reason in order:
            count = by_hour.get(hour, Counter()).get(reason, 0)
            if not count:
                continue
            y_top = _y_of(stacked + count, top)
            bars.append(
                Bar(
                    x=x + 0.5,
                    y=y_top,
                    width=round(max(width - 1, 0.5), 2),
                    height=round(_y_of(stacked, top) - y_top, 2),
                    colour=colours[reason],
                    hour=hour,
                    reason=reason,
                    count=count,
                )
            )
            stacked += count
    return Chart(
        height=PLOT_TOP + PLOT_HEIGHT + AXIS_HEIGHT,
        x_ticks=_time_ticks(window, lambda i, h: _bin_x(window, i)[0]),
        y_ticks=_value_ticks(top, "", whole=True),
        bars=tuple(bars),
        legend=tuple(Legend(r, colours[r], reasons[r]) for r in order),
        empty=not bars,
    )


def _series_chart(
    window: Window,
    traffic: Sequence[ProviderTraffic],
    series: Iterable[tuple[str, str, bool, str]],  # (label suffix, attribute, dashed, metric)
    *,
    top: float,
    unit: str,
) -> Chart:
    lines, dots, legend = [], [], []
    for entry in traffic:
        for suffix, attribute, dashed, metric in series:
            runs: list[list[str]] = [[]]
            for index, hour in enumerate(window.hours):
                hourly = entry.hourly.get(hour)
                value = getattr(hourly, attribute) if hourly else None
                if value is None:
                    if runs[-1]:
                        runs.append([])  # a gap: no calls that hour
                    continue
                x0, width = _bin_x(window, index)
                x, y = round(x0 + width / 2, 2), _y_of(min(value, top), top)
                runs[-1].append(f"{x},{y}")
                dots.append(
                    Dot(
                        x,
                        y,
                        entry.colour,
                        f"{entry.name} {metric} {hour:%Y-%m-%d %H:00}: {value:.1f}{unit}",
                        entry.name,
                        hour,
                        round(value, 3),
                    )
                )
            label = f"{entry.name} {suffix}".strip()
            lines += [Line(label, entry.colour, " ".join(r), dashed) for r in runs if r]
            total_value = getattr(entry.total, attribute)
            legend.append(Legend(label, entry.colour, total_value))
    return Chart(
        height=PLOT_TOP + PLOT_HEIGHT + AXIS_HEIGHT,
        x_ticks=_time_ticks(window, lambda i, h: _bin_x(window, i)[0]),
        y_ticks=_value_ticks(top, unit),
        lines=tuple(lines),
        dots=tuple(dots),
        legend=tuple(legend),
        empty=not dots,
    )


def success_rate_chart(window: Window, traffic: Sequence[ProviderTraffic]) -> Chart:
    return _series_chart(
        window, traffic, [("", "success_rate", False, "success rate")], top=100.0, unit="%"
    )


def latency_chart(window: Window, traffic: Sequence[ProviderTraffic]) -> Chart:
    highest = max(
        (
            hourly.p95_ms or 0
            for entry in traffic
            for hour, hourly in entry.hourly.items()
            if hour >= window.start
        ),
        default=0,
    )
    return _series_chart(
        window,
        traffic,
        [("p50", "p50_ms", False, "p50"), ("p95", "p95_ms", True, "p95")],
        top=nice_ceiling(highest),
        unit=" ms",
    )


def breaker_chart(
    window: Window, timelines: Sequence[tuple[Provider, str, list[Segment]]]
) -> Chart:
    lanes = []
    for index, (provider, current, segments) in enumerate(timelines):
        y = PLOT_TOP + index * (LANE_HEIGHT + LANE_GAP)
        rects = tuple(
            Rect(
                x=_x_of(window, s.start),
                y=y,
                width=round(max(_x_of(window, s.end) - _x_of(window, s.start), 0.5), 2),
                height=LANE_HEIGHT,
                colour=STATE_COLOURS.get(s.state, "#616161"),
                state=s.state,
                start=s.start,
                end=s.end,
            )
            for s in segments
        )
        lanes.append(Lane(provider.name, y, rects, current))
    plot_height = max(len(lanes), 1) * (LANE_HEIGHT + LANE_GAP)
    return Chart(
        height=PLOT_TOP + plot_height + AXIS_HEIGHT,
        x_ticks=_time_ticks(window, lambda i, h: _x_of(window, h)),
        lanes=tuple(lanes),
        legend=tuple(Legend(State(s).label, c) for s, c in STATE_COLOURS.items()),
        empty=not lanes,
        axis_y=PLOT_TOP + plot_height,
    )


# ---------------------------------------------------------------------------
# The page
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Dashboard:
    window: Window
    totals: Totals
    traffic: list[ProviderTraffic]
    failovers: Chart
    success_rate: Chart
    latency: Chart
    breaker: Chart
    rolled_up_at: datetime | None


def dashboard_build(*, range_key: str = DEFAULT_RANGE, now: datetime | None = None) -> Dashboard:
    window = dashboard_window(range_key, now=now)
    providers = list(Provider.objects.in_priority_order().select_related("breaker"))
    traffic = traffic_by_provider(window, providers)
    timelines = []
    for provider in providers:
        current = getattr(getattr(provider, "breaker", None), "state", State.CLOSED)
        timelines.append((provider, current, breaker_segments(window, provider, current)))
    latest = CallRollup.objects.order_by("-updated_at").values_list("updated_at", flat=True)
    return Dashboard(
        window=window,
        totals=totals(window),
        traffic=traffic,
        failovers=failover_chart(window, failovers_by_hour(window)),
        success_rate=success_rate_chart(window, traffic),
        latency=latency_chart(window, traffic),
        breaker=breaker_chart(window, timelines),
        rolled_up_at=latest.first(),
    )
