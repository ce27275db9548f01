"""The one source of time, and the one ``Deadline``, for adapters and the engine.

Django-free, so adapters can use it. ``get_clock()`` is the process clock:
wall-clock time (``now``) is what the breaker shares across processes through
the database; monotonic time measures deadlines and latencies inside one
process. Tests install a ``FakeClock`` to step time without sleeping (while one
is installed, limits move only when the test advances it; socket timeouts stay
real).

``requests``' read timeout bounds each socket read, and keep-alive bytes reset
it: a server trickling bytes or sending ``: keep-alive`` comments would hold a
worker for minutes. A ``Deadline`` knows the real limit; the transport asks it
before every read how long the socket may wait, and checks it again after
every chunk. ``StreamLimits`` adds the stream's own limits.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

# The socket needs a positive timeout; below this the limit counts as reached.
_MIN_WAIT_S = 0.001


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
        self._lock = threading.Lock()
        self.slept: list[float] = []

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(max(seconds, 0))

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += timedelta(seconds=seconds)
            self._mono += seconds

    def set(self, moment: datetime) -> None:
        with self._lock:
            self._mono += (moment - self._now).total_seconds()
            self._now = moment


class PinnedClock(Clock):
    """Real time, shifted so that wall-clock time starts at ``start``.

    Time flows as usual (sleeps and deadlines are real); only the date and hour
    the application sees are pinned. Tests run the live server under it to show
    that no screen depends on the hour the suite happens to run at.
    """

    def __init__(self, start: datetime) -> None:
        self._offset = start - datetime.now(UTC)

    def now(self) -> datetime:
        return datetime.now(UTC) + self._offset


_clock: Clock = Clock()


def get_clock() -> Clock:
    return _clock


def set_clock(clock: Clock) -> Clock:
    """Install ``clock`` and return the previous one (tests restore it)."""
    global _clock
    previous, _clock = _clock, clock
    return previous


class Deadline:
    """A time limit of ``seconds`` from now: one request's, or one attempt's."""

    def __init__(self, seconds: float, *, clock: Clock | None = None) -> None:
        self.seconds = seconds
        self._clock = clock or get_clock()
        self.started = self._clock.monotonic()

    def elapsed(self) -> float:
        return self._clock.monotonic() - self.started

    def remaining(self) -> float:
        return max(self.seconds - self.elapsed(), 0.0)

    def expired_reason(self) -> str | None:
        """Why the work must stop now, or None while every limit has time left."""
        left, reason = min(self._limits())
        return reason if left < _MIN_WAIT_S else None

    def read_timeout(self) -> float:
        """How long the next socket read may block: the least time any limit has left."""
        return max(min(self._limits())[0], _MIN_WAIT_S)

    def binding_limit(self) -> str:
        """The limit a socket timeout hit: the one with the least time left."""
        return min(self._limits())[1]

    def _limits(self) -> list[tuple[float, str]]:
        return [(self.remaining(), f"attempt took longer than its {self.seconds:g}s timeout")]


class StreamLimits(Deadline):
    """The limits of one streamed attempt.

    Before the first model output: the attempt timeout and the first-token
    limit. After it, the stream is limited by silence, not length: the idle
    limit and a generous maximum duration (``max_s``, counted from the start),
    never the attempt timeout. Only model output counts as progress: comments,
    pings and metadata events reset neither the first-token nor the idle timer.
    """

    def __init__(
        self,
        seconds: float,
        *,
        first_token_s: float,
        idle_s: float,
        max_s: float | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(seconds, clock=clock)
        self.first_token_s = first_token_s
        self.idle_s = idle_s
        self.max_s = max(max_s if max_s is not None else seconds, seconds)
        self.last_output: float | None = None

    def mark_output(self) -> None:
        self.last_output = self._clock.monotonic()

    @property
    def output_started(self) -> bool:
        return self.last_output is not None

    def reached_max_duration(self) -> bool:
        return self.output_started and self.elapsed() >= self.max_s - _MIN_WAIT_S

    def _limits(self) -> list[tuple[float, str]]:
        now = self._clock.monotonic()
        if self.last_output is None:
            return [
                *super()._limits(),
                (
                    self.first_token_s - (now - self.started),
                    f"no model output within the {self.first_token_s:g}s first-token limit",
                ),
            ]
        return [
            (
                self.idle_s - (now - self.last_output),
                f"no model output for the {self.idle_s:g}s idle limit",
            ),
            (
                self.max_s - (now - self.started),
                f"stream reached its {self.max_s:g}s maximum duration",
            ),
        ]
