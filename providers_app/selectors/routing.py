"""The routing snapshot: enabled providers with their breaker state, and the named
routes (each an ordered list of those providers: the only order there is)."""

import threading
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import connections, router

from ..models import Provider, Route

# A provider's own breaker settings; empty ones fall back to FALLBACK_BREAKER_*.
BREAKER_OVERRIDE_FIELDS = (
    "failure_threshold",
    "failure_rate_threshold",
    "slow_call_rate_threshold",
    "slow_call_threshold_s",
    "minimum_calls",
    "half_open_probes",
    "open_base_s",
    "open_max_s",
)
# Capability overrides; None means the default for the kind and model.
CAPABILITY_FIELDS = (
    "supports_tools",
    "supports_structured_output",
    "supports_images",
)
# The continuation dialect ("" means the default for the kind, base URL and
# model; adapters/continuation.py); it also gives the `prefill` capability.
CONTINUATION_FIELD = "continuation"
# Dollars per million tokens; None: not priced (engine/usage.py).
PRICE_FIELDS = (
    "price_input_per_mtok",
    "price_cached_input_per_mtok",
    "price_output_per_mtok",
)
# Everything an operator configures (export, import and routing read the same list);
# ids, timestamps and breaker state are not configuration.
PROVIDER_CONFIG_FIELDS = (
    "name",
    "kind",
    "base_url",
    "model",
    "api_key_env",
    "enabled",
    "timeout_s",
    "max_attempts",
    "context_window",
    "extra",
    *BREAKER_OVERRIDE_FIELDS,
    *CAPABILITY_FIELDS,
    CONTINUATION_FIELD,
    *PRICE_FIELDS,
)
# Routing reads only enabled providers, so `enabled` is not part of a route entry.
_PROVIDER_FIELDS = ("id", *(name for name in PROVIDER_CONFIG_FIELDS if name != "enabled"))
_BREAKER_FIELDS = (
    "state",
    "generation",
    "open_until",
    "cooldown_until",
    "consecutive_failures",
    "open_cycles",
)


@dataclass(frozen=True)
class RouteEntry:
    """An enabled provider and its breaker state as one request sees them.

    A small immutable snapshot rather than a model instance: it is cheap to
    build, safe to keep as the last-known state when the database is down, and
    survives model changes.
    """

    id: int
    name: str
    kind: str
    base_url: str
    model: str
    api_key_env: str
    timeout_s: float
    max_attempts: int
    context_window: int | None
    extra: dict[str, Any] = field(hash=False)
    failure_threshold: int | None = None
    failure_rate_threshold: int | None = None
    slow_call_rate_threshold: int | None = None
    slow_call_threshold_s: float | None = None
    minimum_calls: int | None = None
    half_open_probes: int | None = None
    open_base_s: float | None = None
    open_max_s: float | None = None
    supports_tools: bool | None = None
    supports_structured_output: bool | None = None
    supports_images: bool | None = None
    continuation: str = ""
    price_input_per_mtok: Decimal | None = None
    price_cached_input_per_mtok: Decimal | None = None
    price_output_per_mtok: Decimal | None = None
    state: str = "closed"
    generation: int = 0
    open_until: datetime | None = None
    cooldown_until: datetime | None = None
    consecutive_failures: int = 0
    open_cycles: int = 0


_ROUTE_COLUMNS = (*_PROVIDER_FIELDS, *(f"breaker__{f}" for f in _BREAKER_FIELDS))
_compiled = threading.local()


def provider_list_for_routing() -> list[RouteEntry]:
    """Enabled providers in the order they were added (the implicit route's order
    while no route exists) with their breaker state: one query.

    Every request runs this, and building the SQL through the ORM cost several
    times more than running it; so the query is compiled once per thread and
    connection and only executed here.
    """
    connection = connections[router.db_for_read(Provider)]
    cached = getattr(_compiled, "routing", None)
    if cached is None or cached[0] is not connection:
        query = Provider.objects.enabled().in_added_order().values(*_ROUTE_COLUMNS).query
        compiler = query.get_compiler(connection=connection)
        sql, params = compiler.as_sql()
        converters = compiler.get_converters([column for column, _, _ in compiler.select])
        cached = _compiled.routing = (connection, sql, params, compiler, converters)
    connection, sql, params, compiler, converters = cached
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    if converters:
        rows = compiler.apply_converters(rows, converters)
    return [_entry_of(dict(zip(_ROUTE_COLUMNS, row, strict=True))) for row in rows]


def route_entry_for(provider_id: int) -> RouteEntry:
    """One provider as routing sees it, enabled or not (health checks, breaker paths)."""
    (entry,) = _route_entries(Provider.objects.filter(pk=provider_id))
    return entry


def _route_entries(providers) -> list[RouteEntry]:
    return [_entry_of(row) for row in providers.values(*_ROUTE_COLUMNS)]


def _entry_of(row: dict[str, Any]) -> RouteEntry:
    # Every provider has its breaker row (created with it; migration 0005 filled gaps).
    breaker = {f: row.pop(f"breaker__{f}") for f in _BREAKER_FIELDS}
    return RouteEntry(**row, **breaker)


@dataclass(frozen=True)
class RouteSpec:
    """A named route as routing reads it: its settings and its providers' ids in order
    (disabled providers included; the engine keeps only the enabled ones)."""

    name: str
    is_default: bool
    deadline_s: float | None
    failover_on_content_filter: bool | None
    hold_back: bool
    auto_hold_back: bool
    provider_ids: tuple[int, ...]


_ROUTE_SPEC_COLUMNS = (
    "name",
    "is_default",
    "deadline_s",
    "failover_on_content_filter",
    "hold_back",
    "auto_hold_back",
    "members__provider_id",
)


def route_list_for_routing() -> list[RouteSpec]:
    """Every route with its members in order: one query (a route without members
    comes back with none). Read only when the routing version moved."""
    rows = Route.objects.order_by("name", "members__order", "members__id").values_list(
        *_ROUTE_SPEC_COLUMNS
    )
    routes: dict[str, tuple[tuple, list[int]]] = {}
    for *settings, provider_id in rows:
        _, members = routes.setdefault(settings[0], (tuple(settings), []))
        if provider_id is not None:
            members.append(provider_id)
    return [
        RouteSpec(*settings, provider_ids=tuple(members)) for settings, members in routes.values()
    ]
