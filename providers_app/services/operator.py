"""Operator actions (admin, commands): thin wrappers that leave a `manual` event each.

The breaker changes go through `services.breaker`'s operator functions, which
write the `manual` event with the acting user in the same transaction as the
state change. Enabling or disabling a provider is a configuration change, so it
is written here, with its own `manual` event; both bump the routing change
token, so the next request follows the new state. Each action also logs one
structured line naming the actor (never a secret, never a prompt).
"""

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime

from ..engine import breaker
from ..engine.clock import get_clock
from ..engine.events import failover_event_record
from ..engine.routing import routing_changed
from ..models import FailoverEvent, Provider
from . import health

logger = logging.getLogger("providers_app.operator")

Manual = FailoverEvent.ManualReason


@dataclass(frozen=True)
class ActionResult:
    """`changed` is False when there was nothing to do (e.g. already enabled) or a
    concurrent change won every retry; `message` says what happened, for the admin."""

    provider_id: int
    action: str
    changed: bool
    message: str


def _request_id(request_id: str) -> str:
    return request_id or f"operator-{uuid.uuid4().hex[:16]}"


def _log(action: str, provider_id: int, actor, changed: bool, request_id: str, **extra) -> None:
    details = " ".join(f"{key}={value}" for key, value in extra.items())
    logger.warning(
        "manual_action action=%s provider=%s actor=%s changed=%s request_id=%s %s",
        action, provider_id, getattr(actor, "get_username", lambda: actor)(), changed,
        request_id, details,
    )  # fmt: skip


def _breaker_action(
    action: str, provider_id: int, actor, request_id: str, call, done: str, **extra
) -> ActionResult:
    request_id = _request_id(request_id)
    changed = call()
    _log(action, provider_id, actor, changed, request_id, **extra)
    message = done if changed else "a concurrent change won; nothing was changed, try again"
    return ActionResult(provider_id, action, changed, message)


def operator_breaker_reset(*, provider_id: int, actor, request_id: str = "") -> ActionResult:
    """CLOSED with a clean slate: failures, open cycles and cooldown cleared."""
    return _breaker_action(
        Manual.RESET, provider_id, actor, request_id,
        lambda: breaker.breaker_reset(provider_id=provider_id, actor=actor),
        "breaker reset to closed",
    )  # fmt: skip


def operator_breaker_force_open(
    *, provider_id: int, until: datetime | None, actor, request_id: str = ""
) -> ActionResult:
    """Drain the provider (maintenance) until `until`, or until reset when None."""
    label = f"until {until:%Y-%m-%d %H:%M %Z}" if until else "until reset"
    return _breaker_action(
        Manual.FORCE_OPEN, provider_id, actor, request_id,
        lambda: breaker.breaker_force_open(provider_id=provider_id, until=until, actor=actor),
        f"breaker forced open {label}", until=until.isoformat() if until else "none",
    )  # fmt: skip


def operator_breaker_force_closed(*, provider_id: int, actor, request_id: str = "") -> ActionResult:
    return _breaker_action(
        Manual.FORCE_CLOSED, provider_id, actor, request_id,
        lambda: breaker.breaker_force_closed(provider_id=provider_id, actor=actor),
        "breaker forced closed",
    )  # fmt: skip


def operator_breaker_never_trip(*, provider_id: int, actor, request_id: str = "") -> ActionResult:
    """The breaker never trips (every call allowed, nothing evaluated) until reset.
    The provider stays enabled: this is not `operator_provider_disable`."""
    return _breaker_action(
        Manual.NEVER_TRIP, provider_id, actor, request_id,
        lambda: breaker.breaker_never_trip(provider_id=provider_id, actor=actor),
        "breaker set to never trip",
    )  # fmt: skip


def operator_provider_enable(*, provider_id: int, actor, request_id: str = "") -> ActionResult:
    return _set_enabled(provider_id, True, actor, _request_id(request_id))


def operator_provider_disable(*, provider_id: int, actor, request_id: str = "") -> ActionResult:
    """No request is routed to the provider until it is enabled again; its breaker
    is untouched. Not to be confused with `operator_breaker_never_trip`."""
    return _set_enabled(provider_id, False, actor, _request_id(request_id))


def _set_enabled(provider_id: int, enabled: bool, actor, request_id: str) -> ActionResult:
    action = Manual.PROVIDER_ENABLED if enabled else Manual.PROVIDER_DISABLED
    # A conditional UPDATE: only a real change writes an event, and the admin
    # form (which holds other fields) is not involved.
    changed = bool(
        Provider.objects.filter(pk=provider_id, enabled=not enabled).update(
            enabled=enabled, updated_at=get_clock().now()
        )
    )
    if changed:
        routing_changed()
        failover_event_record(
            kind=FailoverEvent.Kind.MANUAL,
            provider_id=provider_id,
            reason=action,
            detail="enabled for routing" if enabled else "disabled: no request is routed to it",
            request_id=request_id,
            actor=actor,
        )
    _log(action, provider_id, actor, changed, request_id)
    word = "enabled" if enabled else "disabled"
    message = f"provider {word}" if changed else f"provider was already {word}"
    return ActionResult(provider_id, action, changed, message)


def operator_health_check(
    *, provider_id: int, actor, request_id: str = ""
) -> tuple[ActionResult, health.HealthCheckReport]:
    """Run a health check now, through the same path (lease, results, effects) as beat."""
    request_id = _request_id(request_id)
    report = health.health_check_run(provider_id=provider_id, force=True)
    if report.skipped:
        message = f"health check skipped ({report.skipped.replace('_', ' ')})"
    elif report.ok:
        message = f"health check passed in {report.latency_ms:.0f} ms"
    else:
        status = f" {report.status_code}" if report.status_code else ""
        message = f"health check failed: {report.error_class}{status}"
    failover_event_record(
        kind=FailoverEvent.Kind.MANUAL,
        provider_id=provider_id,
        reason=Manual.HEALTH_CHECK_NOW,
        status_code=report.status_code,
        detail=message,
        latency_ms=report.latency_ms,
        request_id=request_id,
        actor=actor,
    )
    _log("health_check", provider_id, actor, report.checked, request_id, ok=report.ok)
    return ActionResult(provider_id, "health_check", report.checked, message), report
