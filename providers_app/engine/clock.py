"""The engine's clock: the one process clock of `adapters.timing`, re-exported.

It lives with the adapters because they must stay Django-free and measure
their own limits with the same clock; tests install a `FakeClock` here.
"""

from ..adapters.timing import Clock, FakeClock, get_clock, set_clock

__all__ = ["Clock", "FakeClock", "get_clock", "set_clock"]
