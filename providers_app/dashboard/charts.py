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
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from django.utils import timezone

from ..models import BreakerState
from ..reasons import reason_label
from ..selectors.call_stats import CallStats, RequestStats, floor_to
from ..selectors.providers import ProviderStatus
from .colours import STATE_COLOURS, provider_colour, reason_colour, state_colour
from .reads import (
    Annotation,
    DashboardData,
    KindTotal,
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
# The page draws its charts at the width the browser has for them (the live
# refresh sends it), so one SVG unit is one CSS pixel and labels stay 11 px from
# a 375 px phone to a 1920 px screen.
MIN_WIDTH, MAX_WIDTH = 280, 2400
_width: ContextVar[int] = ContextVar("dashboard_chart_width", default=WIDTH)


def chart_width() -> int:
    return _width.get()


def _plot_width() -> int:
    return chart_width() - PLOT_LEFT - PLOT_RIGHT


@contextmanager
def drawing_width(width: int | None):
    """Draw the charts inside at `width` units (clamped; None: the default)."""
    token = _width.set(WIDTH if width is None else max(MIN_WIDTH, min(MAX_WIDTH, width)))
    try:
        yield
    finally:
        _width.reset(token)


# Labelled time ticks at least this far apart; closer, the interval doubles.
MIN_TICK_GAP = 64
LANE_LABEL_CHARS = 16
# A breaker state shorter than this still shows (a two-minute outage is 0.2
# units wide in seven days): at least this wide, drawn over the closed state.
MIN_SEGMENT_WIDTH = 4.0
# The bottom of the latency axis: faster answers are drawn on it.
LATENCY_FLOOR_MS = 10.0
# Time labels: how often, and how, per range.
TIME_TICKS: dict[str, tuple[timedelta, str]] = {
    "15m": (timedelta(minutes=2), "%H:%M"),
    "1h": (timedelta(minutes=10), "%H:%M"),
    "6h": (timedelta(hours=1), "%H:%M"),
    "24h": (timedelta(hours=3), "%H:%M"),
    "7d": (timedelta(days=1), "%a %d %b"),
}
# Half a label's width (11 px text) from an edge, a label is anchored at its end.
_EDGE_MARGIN = 36


def _moment(value: datetime) -> str:
    """The one time format of the dashboard: 24-hour, the site's time zone."""
    return f"{timezone.localtime(value):%Y-%m-%d %H:%M:%S}"


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
    # the requests it gave up on, by reason, most first
    gave_up: tuple[tuple[str, str, int, str], ...] = ()  # (reason, its label, count, colour)
    share: float | None = None  # of the answered requests, a fraction
    # its failed attempts, by reason, most first: (reason, its label, count, colour)
    failures_by_reason: tuple[tuple[str, str, int, str], ...] = ()

    @property
    def share_percent(self) -> float | None:
        return percent(self.share)

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
class Mark:
    """An event drawn at its time on every time chart, linking to it in the event log."""

    x: float
    event_id: int
    colour: str
    title: str
    kind: str
    reason: str

    @property
    def flag(self) -> str:
        """SVG points of the small triangle atop the mark's line."""
        return f"{self.x - 4:.2f},0 {self.x + 4:.2f},0 {self.x:.2f},6"


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
    marks: tuple[Mark, ...] = ()
    now_x: float | None = None  # the "now" marker
    width: int = field(default_factory=chart_width)
    plot_left: int = PLOT_LEFT
    plot_right: int = field(default_factory=lambda: chart_width() - PLOT_RIGHT)
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
    return round(PLOT_LEFT + max(0.0, min(1.0, offset)) * _plot_width(), 2)


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
    span = _axis_end(window) - window.start
    while _plot_width() * (every / span) < MIN_TICK_GAP and every < span:
        every *= 2
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
            elif chart_width() - x < _EDGE_MARGIN:
                anchor = "end"
            ticks.append(Tick(x, timezone.localtime(moment).strftime(fmt), anchor))
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
    """Failovers per bin, stacked by reason (the biggest reason at the bottom)."""
    reasons = Counter()
    for counts in by_bin.values():
        reasons.update(counts)
    order = [reason for reason, _ in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))]
    colours = {r: reason_colour(r) for r in order}
    return _stacked_chart(window, by_bin, order, colours, label=reason_label)


# The colour of "no answer" in the answers chart: near-black, no state's, no provider's.
NO_ANSWER = "no answer"
NO_ANSWER_COLOUR = "#212121"


def answers_chart(
    window: Window, traffic: Sequence[TrafficRow], failed_by_bin: Mapping[datetime, int]
) -> Chart:
    """Requests per bin as the callers saw them: stacked by the provider that
    answered (in route order), then the ones no provider answered."""
    by_bin: dict[datetime, Counter] = {}
    for start in window.bins:
        counts = Counter()
        for entry in traffic:
            stats = entry.by_bin.get(start)
            if stats is not None and stats.requests_answered:
                counts[entry.name] = stats.requests_answered
        failed = failed_by_bin.get(start, 0) + sum(
            e.by_bin[start].interrupted for e in traffic if start in e.by_bin
        )
        if failed:
            counts[NO_ANSWER] = failed
        by_bin[start] = counts
    order = [entry.name for entry in traffic] + [NO_ANSWER]
    colours = {entry.name: entry.colour for entry in traffic} | {NO_ANSWER: NO_ANSWER_COLOUR}
    return _stacked_chart(window, by_bin, order, colours)


def _stacked_chart(
    window: Window,
    by_bin: Mapping[datetime, Counter],
    order: Sequence[str],
    colours: dict,
    label: Callable[[str], str] = str,
) -> Chart:
    """Bars per bin, one block per key in `order` (the legend gives each key's
    `label` and total)."""
    totals = Counter()
    for counts in by_bin.values():
        totals.update(counts)
    order = [key for key in order if totals[key]]
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
        legend=tuple(Legend(label(r), colours[r], str(totals[r])) for r in order),
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
                        f"{entry.name} {one.metric} {_moment(start)}: {label(value)}",
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
            x = min(x, chart_width() - PLOT_RIGHT - width)
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


# Annotations: manual events in a dark slate; transitions in their state's colour.
MANUAL_MARK_COLOUR = "#37474f"
TRANSITION_STATES = {
    "breaker_opened": State.OPEN,
    "breaker_half_open": State.HALF_OPEN,
    "breaker_closed": State.CLOSED,
}


def _marks(window: Window, found: Sequence[Annotation]) -> tuple[Mark, ...]:
    marks = []
    for note in found:
        if note.kind in TRANSITION_STATES:
            colour = state_colour(TRANSITION_STATES[note.kind])
            what = note.kind.replace("_", " ")
        else:
            colour = MANUAL_MARK_COLOUR
            what = (reason_label(note.reason) if note.reason else "manual change") + (
                f" by {note.actor}" if note.actor else ""
            )
        title = f"{_moment(note.at)} {what}" + (f": {note.provider}" if note.provider else "")
        if note.detail:
            title += f" ({note.detail[:120]})"
        marks.append(
            Mark(_x_of(window, note.at), note.event_id, colour, title, note.kind, note.reason)
        )
    return tuple(marks)


@dataclass(frozen=True)
class DashboardPage:
    window: Window
    totals: tuple[KindTotal, ...]
    routes: list[RouteEvents]
    traffic: list[TrafficRow]
    requests: RequestStats
    answers: Chart
    failovers: Chart
    success_rate: Chart
    first_output: Chart
    total_time: Chart
    breaker: Chart
    marks: tuple[Mark, ...] = ()

    @property
    def bin_label(self) -> str:
        """ "15 seconds", "5 minutes", "hour": what one bin spans, for "per ..." in headings."""
        seconds = int(self.window.bin.total_seconds())
        if seconds < 60:
            return f"{seconds} seconds"
        minutes = seconds // 60
        return "hour" if minutes == 60 else f"{minutes} minutes"

    @property
    def requests_percent(self) -> dict[str, float | None]:
        """Each callers' figure as a share of the requests (None with no requests)."""
        total = self.requests.requests
        names = ("answered_first_try", "answered_after_retries", "answered_by_fallback", "failed")
        return {n: (100.0 * getattr(self.requests, n) / total if total else None) for n in names}


def _by_reason(counts: Counter) -> tuple[tuple[str, str, int, str], ...]:
    return tuple(
        (reason, reason_label(reason), count, reason_colour(reason))
        for reason, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    )


def _rows(data: DashboardData) -> list[TrafficRow]:
    rows = []
    for t in data.traffic:
        gave_up = data.gave_up.get(t.provider.id, Counter())
        rows.append(
            TrafficRow(
                t.name,
                t.enabled,
                provider_colour(t.provider.id),
                t.total,
                t.by_bin,
                gave_up=_by_reason(gave_up),
                share=data.requests.share_of_answers(t.total),
                failures_by_reason=_by_reason(
                    data.failures_by_reason.get(t.provider.id, Counter())
                ),
            )
        )
    return rows


def _annotated(chart: Chart, marks: tuple[Mark, ...], now_x: float) -> Chart:
    return replace(chart, marks=marks, now_x=now_x)


def dashboard_charts(data: DashboardData, *, width: int | None = None) -> DashboardPage:
    """The charts of the dashboard's data, ready for the template, `width` units
    wide (the browser's width for them, in CSS pixels; None: the default)."""
    with drawing_width(width):
        window = data.window
        rows = _rows(data)
        marks = _marks(window, data.annotations)
        now_x = _x_of(window, window.end)

        def annotated(chart: Chart) -> Chart:
            return _annotated(chart, marks, now_x)

        return DashboardPage(
            window=window,
            totals=data.totals,
            routes=data.routes,
            traffic=rows,
            requests=data.requests,
            answers=annotated(answers_chart(window, rows, data.all_failed_by_bin)),
            failovers=annotated(failover_chart(window, data.failovers_by_bin)),
            success_rate=annotated(success_rate_chart(window, rows)),
            first_output=annotated(first_output_chart(window, rows)),
            total_time=annotated(total_time_chart(window, rows)),
            breaker=annotated(breaker_chart(window, data.timelines)),
            marks=marks,
        )
