"""The one source of time for the failover layer, replaceable in tests.

Wall-clock time (`now`) is what the breaker shares across processes through the
database; monotonic time measures deadlines and latencies inside one process.
Tests install a `FakeClock` to step time without sleeping.
"""

import time
from datetime import UTC, datetime, timedelta


class Clock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class FakeClock(Clock):
    """Time that moves only when told to (or when the code under test sleeps)."""

    def __init__(self, start: datetime | None = None):
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._mono = 1000.0
        self.slept: list[float] = []

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(max(seconds, 0))

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)
        self._mono += seconds

    def set(self, moment: datetime) -> None:
        self._mono += (moment - self._now).total_seconds()
        self._now = moment


_clock: Clock = Clock()


def get_clock() -> Clock:
    return _clock


def set_clock(clock: Clock) -> Clock:
    """Install `clock` and return the previous one (tests restore it)."""
    global _clock
    previous, _clock = _clock, clock
    return previous
