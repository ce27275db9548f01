"""Reads: the routing snapshot, "a provider, its breaker and its recent calls", dashboard data.

Selectors import models (and query sets) only; the engine, services, views,
the API and the admin read through them. Call statistics (answered, attempts,
success rate, latency) are defined once, in `call_stats.CallStats`.
"""

from .routing import (
    BREAKER_OVERRIDE_FIELDS,
    CAPABILITY_FIELDS,
    RouteEntry,
    RouteSpec,
    provider_list_for_routing,
    route_entry_for,
    route_list_for_routing,
)

__all__ = [
    "BREAKER_OVERRIDE_FIELDS",
    "CAPABILITY_FIELDS",
    "RouteEntry",
    "RouteSpec",
    "provider_list_for_routing",
    "route_entry_for",
    "route_list_for_routing",
]
