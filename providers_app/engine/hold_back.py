"""Automatic hold-back (``Route.auto_hold_back``; docs/engine.md, "Automatic hold-back").

A live stream cut mid-answer can only be finished by a provider behind the one
streaming it that continues a partial answer. Where there is none, the route
may hold that provider's stream back instead (read it whole, then send it), so
a cut restarts cleanly on the next provider. The price is the time to the first
token: it becomes the time to the end of the answer.
"""

from collections.abc import Callable, Sequence

from ..adapters.base import ChatRequest, ProviderAdapter
from ..adapters.cancel import Cancellation
from ..adapters.continuation import NONE
from ..selectors import RouteEntry
from .capabilities import entry_continuation
from .streams import OpenedStream, open_held_stream, open_stream

Opener = Callable[[ProviderAdapter, ChatRequest, float], OpenedStream]


def hold_back_where_nobody_continues(entries: Sequence[RouteEntry]) -> Opener:
    """An opener that streams live from a provider only while some provider behind
    it on the route can continue its answer, and holds back otherwise."""
    names = [entry.name for entry in entries]
    continuable = [entry_continuation(entry) != NONE for entry in entries]

    def open_(
        adapter: ProviderAdapter,
        request: ChatRequest,
        timeout: float,
        cancellation: Cancellation | None = None,
    ) -> OpenedStream:
        name = adapter.config.provider
        position = names.index(name) if name in names else len(names)
        if any(continuable[position + 1 :]):
            return open_stream(adapter, request, timeout, cancellation)
        return open_held_stream(adapter, request, timeout, cancellation)

    open_.streams = True  # type: ignore[attr-defined]  (see streams.open_stream)
    return open_
