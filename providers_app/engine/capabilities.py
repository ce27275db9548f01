"""The capability filter: a request never reaches a provider that would drop part of it.

A provider lacking what the request needs (tools, structured output, images; or
a request shape its wire format cannot carry, ``adapters/capabilities.py``) is
skipped with the reason ``lacks_<capability>``, never called. When no provider
of the route can take the request, the caller gets a 400 naming the capability
before any upstream call.
"""

from collections.abc import Callable, Iterator, Sequence

from ..adapters.capabilities import CAPABILITIES, default_capabilities, wire_limit
from ..adapters.schema import ChatRequest
from ..reasons import capability_reason
from ..selectors import RouteEntry
from .breaker import Denial
from .outcomes import CapabilityMissing


def capabilities_in_force(
    *, kind: str, model: str, overrides: dict[str, bool | None]
) -> list[tuple[str, bool, bool]]:
    """``(capability, value, is_default)`` for each capability of a provider."""
    defaults = default_capabilities(kind, model)
    rows = []
    for capability in CAPABILITIES:
        override = overrides.get(capability)
        value = defaults.has(capability) if override is None else override
        rows.append((capability, value, override is None))
    return rows


def provider_missing_capability(entry: RouteEntry, request: ChatRequest) -> str | None:
    """The first capability ``request`` needs that ``entry`` lacks, or None."""
    needs = request.required_capabilities
    if needs:
        defaults = default_capabilities(entry.kind, entry.model)
        for capability in sorted(needs):
            override = getattr(entry, f"supports_{capability}")
            if not (defaults.has(capability) if override is None else override):
                return capability
    return wire_limit(entry.kind, entry.model, request)


def capable_entries(
    entries: Sequence[RouteEntry],
    request: ChatRequest,
    *,
    skip: Callable[[RouteEntry, Denial], None],
    request_id: str,
) -> Iterator[RouteEntry]:
    """``entries`` that can take ``request``; the others are skipped up front.

    Raises ``CapabilityMissing`` (before any call) when entries exist but none
    is capable.
    """
    if not request.required_capabilities and request.tool_choice is None:
        yield from entries  # a plain text request: nothing to check (the hot path)
        return
    capable: list[RouteEntry] = []
    missing: list[str] = []
    for entry in entries:
        lacking = provider_missing_capability(entry, request)
        if lacking is None:
            capable.append(entry)
        else:
            missing.append(lacking)
            skip(entry, Denial(capability_reason(lacking)))
    if missing and not capable:
        raise CapabilityMissing(missing[0], request_id=request_id)
    yield from capable
