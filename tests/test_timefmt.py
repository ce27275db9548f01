"""Times for people: seconds, and how far off."""

from datetime import UTC, datetime, timedelta

import pytest

from providers_app.timefmt import (
    clock_text,
    duration_text,
    milliseconds_text,
    moment_html,
    relative_text,
)

NOW = datetime(2026, 12, 2, 14, 3, 27, 654321, tzinfo=UTC)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0 s"), (12.9, "12 s"), (59, "59 s"), (60, "1 min"), (3599, "59 min"),
     (3600, "1 h"), (3600 + 300, "1 h 5 min"), (86400 * 3 + 5, "3 d")],
)  # fmt: skip
def test_duration_text_rounds_down_to_one_unit(seconds, text):
    assert duration_text(seconds) == text


def test_relative_text_says_in_or_ago():
    assert relative_text(NOW + timedelta(seconds=12), now=NOW) == "in 12 s"
    assert relative_text(NOW - timedelta(minutes=3, seconds=5), now=NOW) == "3 min ago"
    assert relative_text(NOW + timedelta(milliseconds=300), now=NOW) == "now"


def test_clock_text_has_seconds_and_the_date_only_when_not_today():
    assert clock_text(NOW + timedelta(seconds=12), now=NOW) == "14:03:39"
    assert clock_text(NOW - timedelta(days=1), now=NOW) == "2026-12-01 14:03:27"


def test_moment_html_has_no_microseconds_and_says_how_far_off():
    html = moment_html(NOW + timedelta(seconds=12), now=NOW)
    assert "14:03:39" in html
    assert "(in 12 s)" in html
    assert "654321" not in html
    assert moment_html(None) == "-"


@pytest.mark.parametrize(
    ("value", "text"),
    [(23.642311000003247, "23.6 ms"), (0.04, "0.0 ms"), (1234.5, "1,234 ms"), (None, "-")],
)
def test_milliseconds_text_is_rounded(value, text):
    assert milliseconds_text(value) == text


def test_a_moment_on_another_day_wraps_between_date_and_time_only():
    html = moment_html(NOW - timedelta(days=1), now=NOW)
    assert '<span class="day">2026-12-01</span> <span class="clock">14:03:27</span>' in html
