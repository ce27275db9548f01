"""The dashboard's presentation: SVG geometry and colours of its charts.

`selectors.dashboard` gives the numbers; this module places them in SVG user
units for the template to draw as inline SVG, so nothing is fetched and no
JavaScript is built. Success rates arrive as fractions and are drawn as %.
"""

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from .models import BreakerState
from .selectors.call_stats import CallStats
from .selectors.dashboard import DashboardData, ProviderTraffic, Segment, Totals, Window
from .selectors.providers import ProviderStatus

State = BreakerState.State

STATE_COLOURS: dict[str, str] = {
    State.CLOSED: "#2e7d32",
    State.HALF_OPEN: "#ef6c00",
    State.OPEN: "#c62828",
    State.FORCED_OPEN: "#6a1b9a",
    State.NEVER_TRIP: "#616161",
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


def percent(rate: float | None) -> float | None:
    """A success rate (a fraction) as a percentage, for display."""
    return None if rate is None else 100.0 * rate


@dataclass(frozen=True)
class TrafficRow:
    """One provider's line of the table and its colour in every chart."""

    name: str
    enabled: bool
    colour: str
    total: CallStats
    hourly: dict[datetime, CallStats]

    @property
    def success_rate_percent(self) -> float | None:
        return percent(self.total.success_rate)


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
    traffic: Sequence[TrafficRow],
    # (label suffix, the value of a CallStats as drawn, dashed, metric name)
    series: Iterable[tuple[str, Callable[[CallStats], float | None], bool, str]],
    *,
    top: float,
    unit: str,
) -> Chart:
    lines, dots, legend = [], [], []
    for entry in traffic:
        for suffix, value_of, dashed, metric in series:
            runs: list[list[str]] = [[]]
            for index, hour in enumerate(window.hours):
                hourly = entry.hourly.get(hour)
                value = value_of(hourly) if hourly else None
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
            legend.append(Legend(label, entry.colour, value_of(entry.total)))
    return Chart(
        height=PLOT_TOP + PLOT_HEIGHT + AXIS_HEIGHT,
        x_ticks=_time_ticks(window, lambda i, h: _bin_x(window, i)[0]),
        y_ticks=_value_ticks(top, unit),
        lines=tuple(lines),
        dots=tuple(dots),
        legend=tuple(legend),
        empty=not dots,
    )


def success_rate_chart(window: Window, traffic: Sequence[TrafficRow]) -> Chart:
    series = [("", lambda stats: percent(stats.success_rate), False, "success rate")]
    return _series_chart(window, traffic, series, top=100.0, unit="%")


def latency_chart(window: Window, traffic: Sequence[TrafficRow]) -> Chart:
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
        [
            ("p50", lambda stats: stats.p50_ms, False, "p50"),
            ("p95", lambda stats: stats.p95_ms, True, "p95"),
        ],
        top=nice_ceiling(highest),
        unit=" ms",
    )


def breaker_chart(
    window: Window, timelines: Sequence[tuple[ProviderStatus, str, list[Segment]]]
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
class DashboardPage:
    window: Window
    totals: Totals
    traffic: list[TrafficRow]
    failovers: Chart
    success_rate: Chart
    latency: Chart
    breaker: Chart
    rolled_up_at: datetime | None


def _rows(traffic: Sequence[ProviderTraffic]) -> list[TrafficRow]:
    return [
        TrafficRow(t.name, t.enabled, PALETTE[i % len(PALETTE)], t.total, t.hourly)
        for i, t in enumerate(traffic)
    ]


def dashboard_charts(data: DashboardData) -> DashboardPage:
    """The charts of the dashboard's data, ready for the template."""
    rows = _rows(data.traffic)
    return DashboardPage(
        window=data.window,
        totals=data.totals,
        traffic=rows,
        failovers=failover_chart(data.window, data.failovers_by_hour),
        success_rate=success_rate_chart(data.window, rows),
        latency=latency_chart(data.window, rows),
        breaker=breaker_chart(data.window, data.timelines),
        rolled_up_at=data.rolled_up_at,
    )
