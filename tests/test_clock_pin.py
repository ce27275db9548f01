"""The application's clock can be pinned to an hour: the live server and every
screen then see that hour while time still flows (`FALLBACK_TEST_CLOCK`)."""

import time as time_module
from datetime import UTC, datetime, timedelta

from providers_app.adapters.timing import PinnedClock
from tests.conftest import _pinned_start


def test_a_pinned_clock_starts_at_its_moment_and_keeps_flowing():
    start = datetime(2026, 12, 7, 23, 58, 30, tzinfo=UTC)
    clock = PinnedClock(start)
    first = clock.now()
    time_module.sleep(0.02)
    second = clock.now()
    assert timedelta(0) <= first - start < timedelta(seconds=1)
    assert second > first
    # Deadlines and sleeps stay real: only the wall clock is shifted.
    assert abs(clock.monotonic() - time_module.monotonic()) < 1


def test_a_bare_time_pins_today_and_an_iso_datetime_pins_that_moment():
    before = datetime.now(UTC).date()
    pinned = _pinned_start("23:58:30")
    assert (pinned.hour, pinned.minute, pinned.second) == (23, 58, 30)
    assert pinned.date() in {before, datetime.now(UTC).date()}  # today, even at midnight
    assert _pinned_start("2026-03-29T01:59:59") == datetime(2026, 3, 29, 1, 59, 59, tzinfo=UTC)
