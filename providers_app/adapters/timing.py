"""Wall-clock limits for one attempt, checked with a monotonic clock.

``requests``' read timeout bounds each socket read, and keep-alive bytes reset
it: a server trickling bytes or sending ``: keep-alive`` comments would hold a
worker for minutes (reference §5). These clocks know the real limits; the
transport asks them before every read how long the socket may wait, and checks
them again after every chunk.
"""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], float]

# The socket needs a positive timeout; below this the limit counts as reached.
_MIN_WAIT_S = 0.001


class Deadline:
    """The whole attempt (connect, headers, body) must end within ``seconds``."""

    def __init__(self, seconds: float, *, clock: Clock = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self.started = clock()

    def elapsed(self) -> float:
        return self._clock() - self.started

    def remaining(self) -> float:
        return self.seconds - self.elapsed()

    def expired_reason(self) -> str | None:
        """Why the attempt must stop now, or None while every limit has time left."""
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


class StreamClock(Deadline):
    """A deadline plus a time-to-first-token limit and an idle limit.

    Only model output counts as progress: comments, pings and metadata events
    reset neither the first-token nor the idle timer.
    """

    def __init__(
        self,
        seconds: float,
        *,
        first_token_s: float,
        idle_s: float,
        clock: Clock = time.monotonic,
    ) -> None:
        super().__init__(seconds, clock=clock)
        self.first_token_s = first_token_s
        self.idle_s = idle_s
        self.last_output: float | None = None

    def mark_output(self) -> None:
        self.last_output = self._clock()

    def _limits(self) -> list[tuple[float, str]]:
        now = self._clock()
        limits = super()._limits()
        if self.last_output is None:
            limits.append(
                (
                    self.first_token_s - (now - self.started),
                    f"no model output within the {self.first_token_s:g}s first-token limit",
                )
            )
        else:
            limits.append(
                (
                    self.idle_s - (now - self.last_output),
                    f"no model output for the {self.idle_s:g}s idle limit",
                )
            )
        return limits
