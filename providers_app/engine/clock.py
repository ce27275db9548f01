"""The engine's clock: the one process clock of `adapters.timing`, re-exported.

It lives with the adapters because they must stay Django-free and measure
their own limits with the same clock; tests install a `FakeClock` (time that
moves when told) or a `PinnedClock` (real time at a pinned hour) here.
"""

from ..adapters.timing import Clock, FakeClock, PinnedClock, get_clock, set_clock

__all__ = ["Clock", "FakeClock", "PinnedClock", "get_clock", "set_clock"]
