"""Times for people: to the second, and relative to now ("in 12 s", "3 min ago").

One definition for every screen that shows a breaker, a cooldown or an event,
so the provider list, the provider page and the event log read the same way.
"""

from datetime import datetime

from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from .engine.clock import get_clock

MINUTE = 60
HOUR = 60 * MINUTE
DAY = 24 * HOUR


def duration_text(seconds: float) -> str:
    """A short, rounded-down span: "12 s", "3 min", "2 h 5 min", "4 d"."""
    seconds = int(abs(seconds))
    if seconds < MINUTE:
        return f"{seconds} s"
    if seconds < HOUR:
        return f"{seconds // MINUTE} min"
    if seconds < DAY:
        hours, minutes = divmod(seconds // MINUTE, 60)
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{seconds // DAY} d"


def relative_text(value: datetime, *, now: datetime) -> str:
    """ "in 12 s" for the future, "3 min ago" for the past, "now" within a second."""
    delta = (value - now).total_seconds()
    if abs(delta) < 1:
        return "now"
    return f"in {duration_text(delta)}" if delta > 0 else f"{duration_text(delta)} ago"


def clock_text(value: datetime, *, now: datetime) -> str:
    """Local time to the second; the date too unless it is today."""
    local, today = timezone.localtime(value), timezone.localtime(now).date()
    if local.date() == today:
        return f"{local:%H:%M:%S}"
    return f"{local:%Y-%m-%d %H:%M:%S}"


def moment_html(value: datetime | None, *, now: datetime | None = None) -> SafeString | str:
    """`<time>` with the clock time and, beneath, how far off it is; "-" for none."""
    if value is None:
        return "-"
    now = now or get_clock().now()
    *day, clock = clock_text(value, now=now).split(" ")
    return format_html(
        '<time class="moment" datetime="{}" title="{}">{}<span class="clock">{}</span>'
        " <small>({})</small></time>",
        value.replace(microsecond=0).isoformat(),
        f"{timezone.localtime(value):%Y-%m-%d %H:%M:%S %Z}",
        format_html('<span class="day">{}</span> ', day[0]) if day else "",
        clock,
        relative_text(value, now=now),
    )


def milliseconds_text(value: float | None) -> str:
    """A latency as people read it: "23.6 ms" below 100 ms, "1,234 ms" above; "-" for none."""
    if value is None:
        return "-"
    return f"{value:.1f} ms" if value < 100 else f"{value:,.0f} ms"
