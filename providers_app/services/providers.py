"""Provider configuration: state rows, and export/import (routes too) as JSON.

Order is a route's (services/routes.py): a provider has none of its own, and the
file says the order only in each route's "providers" list."""

import logging
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from ..engine.capabilities import capabilities_in_force, continuation_in_force
from ..engine.events import failover_event_record
from ..models import BreakerState, FailoverEvent, HealthCheckSchedule, Provider, Route
from ..selectors.routing import CAPABILITY_FIELDS, PROVIDER_CONFIG_FIELDS

logger = logging.getLogger("providers_app.operator")

EXPORT_VERSION = 1
CONFIG_FIELDS = PROVIDER_CONFIG_FIELDS
REQUIRED_FIELDS = ("name", "kind", "base_url", "model")
# A route's settings as exported; "providers" (names, in order) is added to each.
ROUTE_FIELDS = (
    "name",
    "is_default",
    "deadline_s",
    "failover_on_content_filter",
    "hold_back",
    "auto_hold_back",
)
# Fields of older files that mean something else now.
UNKNOWN_FIELDS = {
    "priority": "Providers have no order of their own: list them in order in a route's "
    '"providers" (the "routes" section of the file).',
}


def provider_capabilities(*, provider: Provider) -> list[tuple[str, bool, bool]]:
    """``(capability, value, is_default)`` as routing applies them to this provider."""
    overrides = {
        field.removeprefix("supports_"): getattr(provider, field) for field in CAPABILITY_FIELDS
    }
    return capabilities_in_force(
        kind=provider.kind,
        model=provider.model,
        overrides=overrides,
        base_url=provider.base_url,
        continuation=provider.continuation,
    )


def provider_continuation(*, provider: Provider) -> str:
    """The continuation dialect routing applies to this provider."""
    return continuation_in_force(
        kind=provider.kind,
        base_url=provider.base_url,
        model=provider.model,
        continuation=provider.continuation,
    )


def config_change_record(
    *, actor, what: str, detail: str, provider_id: int | None = None, route: str = ""
) -> None:
    """An operator added, edited or deleted a provider or a route: one audited
    `manual` event (reason `config_changed`) naming who, what and which fields,
    so the dashboard draws it at its time. `what`: "provider alpha changed"."""
    failover_event_record(
        kind=FailoverEvent.Kind.MANUAL,
        provider_id=provider_id,
        reason=FailoverEvent.ManualReason.CONFIG_CHANGED,
        detail=f"{what}: {detail}"[:500] if detail else what,
        request_id=f"operator-{uuid.uuid4().hex[:16]}",
        route=route,
        actor=actor,
    )
    logger.warning(
        "manual_action action=config_changed actor=%s what=%s",
        getattr(actor, "get_username", lambda: actor)(), what,
    )  # fmt: skip


def provider_state_rows_create(*, provider: Provider) -> None:
    """Give a new provider its breaker and health-schedule rows."""
    BreakerState.objects.get_or_create(provider=provider)
    HealthCheckSchedule.objects.get_or_create(provider=provider)


def provider_export() -> dict[str, Any]:
    """The configuration of every provider (in the default route's order, the
    others after) and every route with its providers in order. It holds no
    secret: keys live in the environment and only their variable names are stored."""
    providers = Provider.objects.in_route_order()
    routes = Route.objects.prefetch_related("members__provider")
    return {
        "version": EXPORT_VERSION,
        "providers": [
            {field: _exported(getattr(p, field)) for field in CONFIG_FIELDS} for p in providers
        ],
        "routes": [
            {
                **{field: getattr(route, field) for field in ROUTE_FIELDS},
                "providers": [
                    m.provider.name
                    for m in sorted(route.members.all(), key=lambda m: (m.order, m.id))
                ],
            }
            for route in routes
        ],
    }


def _exported(value: Any) -> Any:
    """Prices as decimal strings ("0.150000"): JSON numbers would round them."""
    return str(value) if isinstance(value, Decimal) else value


@dataclass(frozen=True)
class ImportProblem:
    entry: int
    name: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"entry {self.entry} ({self.name or 'no name'}): {self.field}: {self.message}"


class ProviderImportError(Exception):
    def __init__(self, problems: list[ImportProblem]):
        super().__init__(f"{len(problems)} problem(s); nothing was changed.")
        self.problems = problems


@dataclass(frozen=True)
class ImportSummary:
    created: list[str]
    updated: list[str]
    routes_created: list[str] = ()
    routes_updated: list[str] = ()


def provider_import(*, data: Any) -> ImportSummary:
    """Create or update providers by name, all or nothing.

    Every entry is validated before anything is written; any problem raises
    `ProviderImportError` listing each one with the entry's name and field.
    """
    entries = _entries_of(data)
    existing = {p.name: p for p in Provider.objects.all()}
    problems: list[ImportProblem] = []
    numbered: list[tuple[int, Provider]] = []
    for number, entry in enumerate(entries, start=1):
        provider, entry_problems = _stage_entry(number, entry, existing)
        problems += entry_problems
        if provider is not None:
            numbered.append((number, provider))
    problems += _duplicate_problems(numbered, existing)
    known_providers = set(existing) | {p.name for _, p in numbered}
    staged_routes, route_problems = _stage_routes(data, known_providers)
    problems += route_problems
    if problems:
        raise ProviderImportError(problems)
    staged = [provider for _, provider in numbered]

    with transaction.atomic():
        updated = [p for p in staged if p.pk is not None]
        for provider in staged:
            provider.save()
        routes_created, routes_updated = _apply_routes(staged_routes)
    return ImportSummary(
        created=[p.name for p in staged if p not in updated],
        updated=[p.name for p in updated],
        routes_created=routes_created,
        routes_updated=routes_updated,
    )


def _stage_routes(
    data: Any, known_providers: set[str]
) -> tuple[list[tuple[Route, list[str] | None]], list[ImportProblem]]:
    """Routes of the file (optional "routes" list), validated; each with its provider names.

    A route is matched by name: a known one is updated and its members replaced by
    the file's list (in that order); routes absent from the file are left alone.
    """
    if not isinstance(data, dict) or "routes" not in data:
        return [], []
    entries = data["routes"]
    if not isinstance(entries, list):
        return [], [ImportProblem(0, "", "routes", "Expected a list of routes.")]
    existing = {r.name: r for r in Route.objects.all()}
    problems: list[ImportProblem] = []
    staged: list[tuple[Route, list[str] | None]] = []
    for number, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict):
            problems.append(ImportProblem(number, "", "route", "Expected a JSON object."))
            continue
        name = str(entry.get("name", ""))
        unknown = sorted(set(entry) - {*ROUTE_FIELDS, "providers"})
        problems += [ImportProblem(number, name, f"routes.{f}", "Unknown field.") for f in unknown]
        members = entry.get("providers")  # absent: a known route keeps its members
        if members is not None and (
            not isinstance(members, list) or not all(isinstance(m, str) for m in members)
        ):
            problems.append(
                ImportProblem(number, name, "routes.providers", "Expected a list of names.")
            )
            continue
        members = [] if members is None and name not in existing else members
        problems += [
            ImportProblem(number, name, "routes.providers", f"No provider named {m!r}.")
            for m in members or ()
            if m not in known_providers
        ]
        if members and len(set(members)) != len(members):
            problems.append(
                ImportProblem(number, name, "routes.providers", "A provider appears twice.")
            )
        route = existing.get(name) or Route()  # changed in memory only until applied
        for field in ROUTE_FIELDS:
            if field in entry:
                setattr(route, field, entry[field])
        try:
            route.clean_fields()
        except ValidationError as exc:
            problems += [
                ImportProblem(number, name, f"routes.{field}", " ".join(messages))
                for field, messages in exc.message_dict.items()
            ]
            continue
        staged.append((route, members))
    names = [route.name for route, _ in staged]
    problems += [
        ImportProblem(0, name, "routes.name", "Appears more than once.")
        for name in sorted({n for n in names if names.count(n) > 1})
    ]
    kept_defaults = [r.name for n, r in existing.items() if r.is_default and n not in names]
    defaults = kept_defaults + [route.name for route, _ in staged if route.is_default]
    if len(defaults) > 1:
        problems.append(
            ImportProblem(
                0, "", "routes.is_default", f"Only one default route: {', '.join(defaults)}."
            )
        )
    return staged, problems


def _apply_routes(staged: list[tuple[Route, list[str] | None]]) -> tuple[list[str], list[str]]:
    from .routes import route_members_set

    ids = dict(Provider.objects.values_list("name", "pk"))
    created, updated = [], []
    # Clear the default flags first, so a file moving the default never meets the
    # one-default constraint halfway.
    Route.objects.filter(name__in=[r.name for r, _ in staged], is_default=True).update(
        is_default=False
    )
    for route, members in sorted(staged, key=lambda item: item[0].is_default):
        (updated if route.pk else created).append(route.name)
        route.save()
        if members is not None:
            route_members_set(route=route, providers=[ids[name] for name in members])
    return created, updated


def _entries_of(data: Any) -> list[Any]:
    if isinstance(data, dict) and isinstance(data.get("providers"), list):
        return data["providers"]
    if isinstance(data, list):
        return data
    raise ProviderImportError(
        [ImportProblem(0, "", "providers", 'Expected {"providers": [...]} or a list.')]
    )


def _stage_entry(
    number: int, entry: Any, existing: dict[str, Provider]
) -> tuple[Provider | None, list[ImportProblem]]:
    if not isinstance(entry, dict):
        return None, [ImportProblem(number, "", "entry", "Expected a JSON object.")]
    name = str(entry.get("name", ""))
    entry = _continuation_from_prefill(entry)
    problems = [
        ImportProblem(number, name, field, UNKNOWN_FIELDS.get(field, "Unknown field."))
        for field in sorted(set(entry) - set(CONFIG_FIELDS))
    ]
    current = existing.get(name)
    problems += [
        ImportProblem(number, name, field, "This field is required.")
        for field in REQUIRED_FIELDS
        if current is None and field not in entry
    ]
    if problems:
        return None, problems
    provider = (
        Provider(**{f: getattr(current, f) for f in CONFIG_FIELDS}) if current else Provider()
    )
    if current:
        provider.pk = current.pk
        provider.created_at = current.created_at
    for field in CONFIG_FIELDS:
        if field in entry:
            setattr(provider, field, entry[field])
    try:
        # Uniqueness is checked across the whole file below, not row by row.
        provider.full_clean(validate_unique=False, validate_constraints=False)
    except ValidationError as exc:
        return None, [
            ImportProblem(number, name, field, " ".join(messages))
            for field, messages in exc.message_dict.items()
        ]
    return provider, []


# Files exported before continuation dialects carry `supports_prefill`; it is read
# as the migration read the column (yes: trailing_assistant, no: none, empty: "").
_PREFILL_TO_CONTINUATION = {True: "trailing_assistant", False: "none", None: ""}


def _continuation_from_prefill(entry: dict) -> dict:
    if "supports_prefill" not in entry or "continuation" in entry:
        return entry
    entry = dict(entry)
    prefill = entry.pop("supports_prefill")
    if prefill not in _PREFILL_TO_CONTINUATION:  # left for the field check to name
        entry["continuation"] = prefill
    elif not (prefill and entry.get("kind") in ("openai", "azure_openai")):
        entry["continuation"] = _PREFILL_TO_CONTINUATION[prefill]
    return entry


def _duplicate_problems(
    numbered: list[tuple[int, Provider]], existing: dict[str, Provider]
) -> list[ImportProblem]:
    """Names must stay unique once the file is applied."""
    problems = []
    seen_names: set[str] = set()
    for number, provider in numbered:
        if provider.name in seen_names:
            problems.append(ImportProblem(number, provider.name, "name", "Appears more than once."))
        seen_names.add(provider.name)
    return problems
