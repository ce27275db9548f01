"""The dashboard's presentation: SVG geometry and colours of its charts.

`dashboard.reads` gives the numbers; this module places them in SVG user
units for the template to draw as inline SVG, so nothing is fetched and no
JavaScript is built. Success rates arrive as fractions and are drawn as %.

Every chart shares one time axis: the window's bins from the first bin's start
to the last bin's end ("now" falls inside the last bin). Latency is drawn on a
log scale, so one slow provider does not flatten the others into the floor.
"""

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ..models import BreakerState
from ..selectors.call_stats import CallStats, floor_to
from ..selectors.providers import ProviderStatus
from .colours import STATE_COLOURS, provider_colour, reason_colour, state_colour
from .reads import (
    DashboardData,
    KindTotal,
    ProviderTraffic,
    RouteEvents,
    Segment,
    Window,
)

State = BreakerState.State

# Chart geometry, in SVG user units (the SVG is drawn about one unit per pixel).
WIDTH = 960
# Wide enough for "100%", "100 s" and a provider name of LANE_LABEL_CHARS at 11 px.
PLOT_LEFT = 124
# Room for half of a time label centred on the last tick.
PLOT_RIGHT = 28
PLOT_TOP = 10
PLOT_HEIGHT = 160
AXIS_HEIGHT = 22
LANE_HEIGHT = 22
LANE_GAP = 6
PLOT_WIDTH = WIDTH - PLOT_LEFT - PLOT_RIGHT
LANE_LABEL_CHARS = 16
# A breaker state shorter than this still shows (a two-minute outage is 0.2
# units wide in seven days): at least this wide, drawn over the closed state.
MIN_SEGMENT_WIDTH = 4.0
# The bottom of the latency axis: faster answers are drawn on it.
LATENCY_FLOOR_MS = 10.0
# Time labels: how often, and how, per range.
TIME_TICKS: dict[str, tuple[timedelta, str]] = {
    "1h": (timedelta(minutes=10), "%H:%M"),
    "6h": (timedelta(hours=1), "%H:%M"),
    "24h": (timedelta(hours=3), "%H:%M"),
    "7d": (timedelta(days=1), "%a %d %b"),
}
# Half a label's width (11 px text) from an edge, a label is anchored at its end.
_EDGE_MARGIN = 36


def percent(rate: float | None) -> float | None:
    """A success rate (a fraction) as a percentage, for display."""
    return None if rate is None else 100.0 * rate


def duration_label(ms: float) -> str:
    """A latency as people read it: "250 ms", "1.5 s", "10 s"."""
    if ms < 1000:
        return f"{ms:.0f} ms"
    seconds = ms / 1000
    return f"{seconds:.1f} s".replace(".0 s", " s") if seconds < 10 else f"{seconds:.0f} s"


@dataclass(frozen=True)
class TrafficRow:
    """One provider's line of the table and its colour in every chart."""

    name: str
    enabled: bool
    colour: str
    total: CallStats
    by_bin: dict[datetime, CallStats]

    @property
    def success_rate_percent(self) -> float | None:
        return percent(self.total.success_rate)

    @property
    def latency(self) -> dict[str, str]:
        """The window's percentiles as the table shows them ("372 ms", "7.6 s");
        absent when nothing was answered."""
        figures = {
            "p50_ms": self.total.p50_ms,
            "p95_ms": self.total.p95_ms,
            "total_p50_ms": self.total.total_p50_ms,
            "total_p95_ms": self.total.total_p95_ms,
        }
        return {name: duration_label(ms) for name, ms in figures.items() if ms is not None}


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    colour: str
    start: datetime
    reason: str
    count: int


@dataclass(frozen=True)
class Tick:
    position: float  # x for time ticks, y for value ticks
    label: str
    anchor: str = "middle"  # SVG text-anchor of a time label


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
    start: datetime
    value: float
    series: str


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
    short_label: str
    y: float
    rects: tuple[Rect, ...]
    current: str


@dataclass(frozen=True)
class Legend:
    label: str
    colour: str
    total: str | None = None  # the window's figure, formatted


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
    dot_radius: float = 2.5

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


def _axis_end(window: Window) -> datetime:
    return window.bins[-1] + window.bin


def _x_of(window: Window, moment: datetime) -> float:
    span = (_axis_end(window) - window.start).total_seconds()
    offset = (moment - window.start).total_seconds() / span
    return round(PLOT_LEFT + max(0.0, min(1.0, offset)) * PLOT_WIDTH, 2)


def _bin_x(window: Window, start: datetime) -> tuple[float, float]:
    x = _x_of(window, start)
    return x, round(_x_of(window, start + window.bin) - x, 2)


def _y_of(value: float, top: float) -> float:
    return round(PLOT_TOP + PLOT_HEIGHT * (1 - value / top), 2)


def _log_y_of(ms: float, top: float) -> float:
    low, high = math.log10(LATENCY_FLOOR_MS), math.log10(top)
    share = (math.log10(max(ms, LATENCY_FLOOR_MS)) - low) / (high - low)
    return round(PLOT_TOP + PLOT_HEIGHT * (1 - min(share, 1.0)), 2)


def time_ticks(window: Window) -> tuple[Tick, ...]:
    """Labelled moments on the time axis: round times (midnight for days), none
    clipped: a label near an edge is anchored at its start or end instead of
    its middle."""
    every, fmt = TIME_TICKS.get(window.key, (timedelta(hours=3), "%H:%M"))
    moment = floor_to(window.start, every) if every < timedelta(days=1) else window.start
    if every >= timedelta(days=1):
        moment = moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    ticks = []
    while moment <= _axis_end(window):
        if moment >= window.start:
            x = _x_of(window, moment)
            anchor = "middle"
            if x - PLOT_LEFT < _EDGE_MARGIN:
                anchor = "start"
            elif WIDTH - x < _EDGE_MARGIN:
                anchor = "end"
            ticks.append(Tick(x, moment.strftime(fmt), anchor))
        moment += every
    return tuple(ticks)


def _value_ticks(top: float, unit: str, *, whole: bool = False) -> tuple[Tick, ...]:
    """Grid lines at quarters of the axis; for counts (`whole`), only where they
    fall on whole numbers."""
    fractions = [f for f in (0.0, 0.25, 0.5, 0.75, 1.0) if not whole or (top * f).is_integer()]
    return tuple(Tick(_y_of(top * f, top), f"{top * f:g}{unit}") for f in fractions)


def _log_ticks(top: float) -> tuple[Tick, ...]:
    """A grid line per decade from the floor to the top."""
    ticks, ms = [], LATENCY_FLOOR_MS
    while ms <= top:
        ticks.append(Tick(_log_y_of(ms, top), duration_label(ms)))
        ms *= 10
    return tuple(ticks)


def failover_chart(window: Window, by_bin: Mapping[datetime, Counter]) -> Chart:
    reasons = Counter()
    for counts in by_bin.values():
        reasons.update(counts)
    order = [reason for reason, _ in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))]
    colours = {reason: reason_colour(reason) for reason in order}
    top = nice_ceiling(max((sum(c.values()) for c in by_bin.values()), default=0))
    bars = []
    for start in window.bins:
        x, width = _bin_x(window, start)
        stacked = 0
        for reason in order:
            count = by_bin.get(start, Counter()).get(reason, 0)
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
                    start=start,
                    reason=reason,
                    count=count,
                )
            )
            stacked += count
    return Chart(
        height=PLOT_TOP + PLOT_HEIGHT + AXIS_HEIGHT,
        x_ticks=time_ticks(window),
        y_ticks=_value_ticks(top, "", whole=True),
        bars=tuple(bars),
        legend=tuple(Legend(r, colours[r], str(reasons[r])) for r in order),
        empty=not bars,
    )


@dataclass(frozen=True)
class Series:
    suffix: str  # after the provider's name in the legend ("p95"), or ""
    value_of: Callable[[CallStats], float | None]
    dashed: bool
    metric: str  # in each dot's title


def _series_chart(
    window: Window,
    traffic: Sequence[TrafficRow],
    series: Iterable[Series],
    *,
    y_of: Callable[[float], float],
    y_ticks: tuple[Tick, ...],
    label: Callable[[float], str],
) -> Chart:
    """A line per provider and series through the bins that had calls; a bin
    without calls has no value, and the line joins its neighbours across it."""
    lines, dots, legend = [], [], []
    for entry in traffic:
        for one in series:
            points: list[str] = []
            for start in window.bins:
                stats = entry.by_bin.get(start)
                value = one.value_of(stats) if stats else None
                if value is None:
                    continue
                x0, width = _bin_x(window, start)
                x, y = round(x0 + width / 2, 2), y_of(value)
                points.append(f"{x},{y}")
                dots.append(
                    Dot(
                        x,
                        y,
                        entry.colour,
                        f"{entry.name} {one.metric} {start:%Y-%m-%d %H:%M}: {label(value)}",
                        entry.name,
                        start,
                        round(value, 3),
                        one.suffix or one.metric,
                    )
                )
            name = f"{entry.name} {one.suffix}".strip()
            if len(points) > 1:
                lines.append(Line(name, entry.colour, " ".join(points), one.dashed))
            total = one.value_of(entry.total)
            legend.append(Legend(name, entry.colour, None if total is None else label(total)))
    return Chart(
        height=PLOT_TOP + PLOT_HEIGHT + AXIS_HEIGHT,
        x_ticks=time_ticks(window),
        y_ticks=y_ticks,
        lines=tuple(lines),
        dots=tuple(dots),
        legend=tuple(legend),
        empty=not dots,
        # A week of hourly dots would merge into a thick band: smaller, the line reads.
        dot_radius=2.5 if len(window.bins) <= 48 else 1.2,
    )


def success_rate_chart(window: Window, traffic: Sequence[TrafficRow]) -> Chart:
    return _series_chart(
        window,
        traffic,
        [Series("", lambda stats: percent(stats.success_rate), False, "success rate")],
        y_of=lambda value: _y_of(value, 100.0),
        y_ticks=_value_ticks(100.0, "%"),
        label=lambda value: f"{value:.1f}%",
    )


def _latency_chart(
    window: Window,
    traffic: Sequence[TrafficRow],
    p50: Callable[[CallStats], float | None],
    p95: Callable[[CallStats], float | None],
) -> Chart:
    highest = max(
        (p95(stats) or 0 for entry in traffic for stats in entry.by_bin.values()), default=0
    )
    # A whole decade above the slowest p95, and at least 1 s.
    top = 10.0 ** max(3, math.ceil(math.log10(max(highest, 1.0))))
    return _series_chart(
        window,
        traffic,
        [Series("p50", p50, False, "p50"), Series("p95", p95, True, "p95")],
        y_of=lambda value: _log_y_of(value, top),
        y_ticks=_log_ticks(top),
        label=duration_label,
    )


def first_output_chart(window: Window, traffic: Sequence[TrafficRow]) -> Chart:
    """Time to first output (the whole answer when not streamed)."""
    return _latency_chart(window, traffic, lambda s: s.p50_ms, lambda s: s.p95_ms)


def total_time_chart(window: Window, traffic: Sequence[TrafficRow]) -> Chart:
    """Total time to the end of the answer (a stream's last chunk)."""
    return _latency_chart(window, traffic, lambda s: s.total_p50_ms, lambda s: s.total_p95_ms)


def _lane_rects(window: Window, segments: Sequence[Segment], y: float) -> tuple[Rect, ...]:
    rects = []
    for s in segments:
        x, end = _x_of(window, s.start), _x_of(window, s.end)
        width = end - x
        if s.state != State.CLOSED and width < MIN_SEGMENT_WIDTH:
            width = MIN_SEGMENT_WIDTH
            x = min(x, WIDTH - PLOT_RIGHT - width)
        rects.append(
            Rect(
                x=round(x, 2),
                y=y,
                width=round(max(width, 0.5), 2),
                height=LANE_HEIGHT,
                colour=state_colour(s.state),
                state=s.state,
                start=s.start,
                end=s.end,
            )
        )
    # Closed first, so a widened short state is painted over its neighbours.
    return tuple(sorted(rects, key=lambda r: r.state != State.CLOSED))


def _short(name: str) -> str:
    return name if len(name) <= LANE_LABEL_CHARS else name[: LANE_LABEL_CHARS - 1] + "…"


def breaker_chart(
    window: Window, timelines: Sequence[tuple[ProviderStatus, str, list[Segment]]]
) -> Chart:
    lanes = []
    for index, (provider, current, segments) in enumerate(timelines):
        y = PLOT_TOP + index * (LANE_HEIGHT + LANE_GAP)
        lanes.append(
            Lane(provider.name, _short(provider.name), y, _lane_rects(window, segments, y), current)
        )
    plot_height = max(len(lanes), 1) * (LANE_HEIGHT + LANE_GAP)
    return Chart(
        height=PLOT_TOP + plot_height + AXIS_HEIGHT,
        x_ticks=time_ticks(window),
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
    totals: tuple[KindTotal, ...]
    routes: list[RouteEvents]
    traffic: list[TrafficRow]
    failovers: Chart
    success_rate: Chart
    first_output: Chart
    total_time: Chart
    breaker: Chart

    @property
    def bin_label(self) -> str:
        """ "5 minutes", "hour": what one bin spans, for "per ..." in headings."""
        minutes = int(self.window.bin.total_seconds() // 60)
        return "hour" if minutes == 60 else f"{minutes} minutes"


def _rows(traffic: Sequence[ProviderTraffic]) -> list[TrafficRow]:
    return [
        TrafficRow(t.name, t.enabled, provider_colour(t.provider.id), t.total, t.by_bin)
        for t in traffic
    ]


def dashboard_charts(data: DashboardData) -> DashboardPage:
    """The charts of the dashboard's data, ready for the template."""
    rows = _rows(data.traffic)
    return DashboardPage(
        window=data.window,
        totals=data.totals,
        routes=data.routes,
        traffic=rows,
        failovers=failover_chart(data.window, data.failovers_by_bin),
        success_rate=success_rate_chart(data.window, rows),
        first_output=first_output_chart(data.window, rows),
        total_time=total_time_chart(data.window, rows),
        breaker=breaker_chart(data.window, data.timelines),
    )
