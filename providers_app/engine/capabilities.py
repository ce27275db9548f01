"""The capability filter: a request never reaches a provider that would drop part of it.

A provider lacking what the request needs (tools, structured output, images; or
a request shape its wire format cannot carry, ``adapters/capabilities.py``) is
skipped with the reason ``lacks_<capability>``, never called. When no provider
of the route can take the request, the caller gets a 400 naming the capability
before any upstream call.
"""

from collections.abc import Callable, Iterator, Sequence

from ..adapters.capabilities import (
    CAPABILITIES,
    default_capabilities,
    default_continuation,
    wire_limit,
)
from ..adapters.continuation import NONE
from ..adapters.schema import PREFILL, ChatRequest
from ..selectors import RouteEntry
from .breaker import Denial
from .outcomes import CapabilityMissing


def continuation_in_force(*, kind: str, base_url: str, model: str, continuation: str) -> str:
    """The provider's continuation dialect: the operator's (or learned) choice, else
    the default for the kind, base URL and model (adapters/capabilities.py)."""
    return continuation or default_continuation(kind, base_url, model)


def entry_continuation(entry: RouteEntry) -> str:
    return continuation_in_force(
        kind=entry.kind, base_url=entry.base_url, model=entry.model, continuation=entry.continuation
    )


def capabilities_in_force(
    *,
    kind: str,
    model: str,
    overrides: dict[str, bool | None],
    base_url: str = "",
    continuation: str = "",
) -> list[tuple[str, bool, bool]]:
    """``(capability, value, is_default)`` for each capability of a provider;
    ``prefill`` is "has a continuation dialect other than none"."""
    defaults = default_capabilities(kind, model, base_url)
    rows = []
    for capability in CAPABILITIES:
        if capability == PREFILL:
            dialect = continuation_in_force(
                kind=kind, base_url=base_url, model=model, continuation=continuation
            )
            rows.append((capability, dialect != NONE, not continuation))
            continue
        override = overrides.get(capability)
        value = defaults.has(capability) if override is None else override
        rows.append((capability, value, override is None))
    return rows


def provider_missing_capability(entry: RouteEntry, request: ChatRequest) -> str | None:
    """The first capability ``request`` needs that ``entry`` lacks, or None."""
    needs = request.required_capabilities
    if needs:
        defaults = default_capabilities(entry.kind, entry.model, entry.base_url)
        for capability in sorted(needs):
            if capability == PREFILL:
                if entry_continuation(entry) == NONE:
                    return capability
                continue
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
            skip(entry, Denial(f"lacks_{lacking}"))
    if missing and not capable:
        raise CapabilityMissing(missing[0], request_id=request_id)
    yield from capable
