"""A fault schedule: the simulator switches its own fault as time passes.

The demo's primary follows ``DEMO_SCHEDULE`` so that failover happens with
nobody pressing a button: a short outage right after start (so the first
minute shows a failover, the breaker opening, a probe and the return), a burst
of rate limits with a long ``Retry-After``, slow first tokens, and an outage of
about a minute, then the cycle repeats.

``FaultSchedule.at(elapsed)`` is a pure function of the time since start, so
tests check the timetable without waiting; ``ScheduleRunner`` applies it to a
``SimulatorState`` from a daemon thread. A fault set by hand (``/_sim`` page)
lasts until the next phase begins.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .faults import Fault, FaultConfigError, SimulatorState, parse_fault

__all__ = ["DEMO_SCHEDULE", "FaultSchedule", "Phase", "ScheduleRunner"]


@dataclass(frozen=True)
class Phase:
    """``seconds`` of one fault; ``label`` says what it shows in the demo."""

    label: str
    seconds: float
    fault: Fault

    def as_dict(self) -> dict[str, Any]:
        return {"label": self.label, "seconds": self.seconds, **self.fault.as_dict()}


@dataclass(frozen=True)
class Position:
    """Where a schedule is at one moment."""

    cycle: int  # 0 for the first pass
    index: int
    phase: Phase
    remaining_s: float


class FaultSchedule:
    """Phases played in order, then again from the first, forever."""

    def __init__(self, phases: Sequence[Phase]) -> None:
        if not phases:
            raise FaultConfigError("a schedule needs at least one phase", param="phases")
        for index, phase in enumerate(phases):
            if not phase.seconds > 0:
                raise FaultConfigError(
                    f"phases[{index}].seconds must be above 0", param=f"phases[{index}].seconds"
                )
        self.phases: tuple[Phase, ...] = tuple(phases)
        self.cycle_s = sum(phase.seconds for phase in self.phases)

    @classmethod
    def from_spec(cls, spec: Sequence[Mapping[str, Any]]) -> FaultSchedule:
        """Build from ``[{"label", "seconds", "mode", "options"}, ...]`` (validated)."""
        phases = []
        for index, raw in enumerate(spec):
            seconds = raw.get("seconds")
            if isinstance(seconds, bool) or not isinstance(seconds, int | float):
                raise FaultConfigError(
                    f"phases[{index}].seconds must be a number", param=f"phases[{index}].seconds"
                )
            fault = parse_fault(raw.get("mode"), raw.get("options") or {})
            phases.append(Phase(str(raw.get("label") or fault.mode), float(seconds), fault))
        return cls(phases)

    def at(self, elapsed_s: float) -> Position:
        """The phase in force ``elapsed_s`` seconds after the start."""
        cycle, offset = divmod(max(elapsed_s, 0.0), self.cycle_s)
        for index, phase in enumerate(self.phases):
            if offset < phase.seconds:
                return Position(int(cycle), index, phase, phase.seconds - offset)
            offset -= phase.seconds
        # Rounding put us at the very end of the cycle: that is the next start.
        return Position(int(cycle) + 1, 0, self.phases[0], self.phases[0].seconds)

    def describe(self) -> list[str]:
        """One line per phase with its start and end, for the demo's banner."""
        lines, start = [], 0.0
        for phase in self.phases:
            end = start + phase.seconds
            lines.append(f"{_clock(start)}-{_clock(end)}  {phase.label}")
            start = end
        lines.append(f"then again from the start (cycle {_clock(self.cycle_s)})")
        return lines

    def as_list(self) -> list[dict[str, Any]]:
        return [phase.as_dict() for phase in self.phases]


def _clock(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}:{rest:02d}"


class ScheduleRunner:
    """Applies a schedule to one simulator's state until stopped.

    The fault changes only at phase boundaries, so a hand-set fault stays until
    the next phase. ``clock`` is injectable for tests (``time.monotonic``).
    """

    def __init__(
        self,
        schedule: FaultSchedule,
        state: SimulatorState,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.schedule = schedule
        self._state = state
        self._clock = clock
        self._started_at: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._applied: tuple[int, int] | None = None  # (cycle, index) last applied

    def start(self, name: str = "sim") -> ScheduleRunner:
        self._started_at = self._clock()
        self._stop.clear()
        self.tick()
        self._thread = threading.Thread(
            target=self._run, name=f"fault-schedule-{name}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1)
            self._thread = None

    def position(self) -> Position:
        started = self._clock() if self._started_at is None else self._started_at
        return self.schedule.at(self._clock() - started)

    def tick(self) -> Position:
        """Apply the phase in force if it has not been applied yet; return it."""
        position = self.position()
        key = (position.cycle, position.index)
        if key != self._applied:
            self._applied = key
            self._state.set_fault(position.phase.fault)
        return position

    def _run(self) -> None:
        while not self._stop.is_set():
            position = self.tick()
            # Wake at the next boundary (or sooner, to notice stop()).
            self._stop.wait(min(max(position.remaining_s, 0.01), 1.0))

    def status(self) -> dict[str, Any]:
        """JSON-ready: the timetable and where it is now (for ``/_sim/state``)."""
        position = self.position()
        return {
            "phases": self.schedule.as_list(),
            "cycle_s": self.schedule.cycle_s,
            "cycle": position.cycle,
            "phase_index": position.index,
            "phase": position.phase.label,
            "phase_remaining_s": round(position.remaining_s, 1),
        }


# The demo's primary. Durations are chosen against the default breaker: five
# failures in a row open it, it stays open 10 s (+-20 %) and then 20 s, so the
# 30 s outage ends before the second or third probe, within the first minute.
# The 15 s rate-limit hint is above FALLBACK_MAX_INLINE_RETRY_AFTER_S (5 s):
# requests fail over at once and the primary cools down instead of waiting.
# A 12 s silent start is above FALLBACK_STREAM_FIRST_TOKEN_S (10 s) for streams
# and the demo providers' 10 s timeout for plain requests: they hand over.
DEMO_SCHEDULE = FaultSchedule(
    [
        Phase("healthy (warm-up)", 10, parse_fault("ok")),
        Phase("short outage: HTTP 503", 30, parse_fault("error", {"status": 503})),
        Phase("healthy", 40, parse_fault("ok")),
        Phase(
            "rate-limit burst: 429, Retry-After 15 s",
            15,
            parse_fault("rate_limit", {"retry_after": "15"}),
        ),
        Phase("healthy", 30, parse_fault("ok")),
        Phase(
            "slow first tokens: 12 s of keep-alives",
            20,
            parse_fault("slow_first_token", {"delay_s": 12, "interval_s": 1}),
        ),
        Phase("healthy", 30, parse_fault("ok")),
        Phase("outage: HTTP 503", 60, parse_fault("error", {"status": 503})),
        Phase("healthy", 45, parse_fault("ok")),
    ]
)
