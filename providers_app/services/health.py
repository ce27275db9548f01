"""Active health checks: which providers are due, one lease per check, and what a result does.

A check goes through `fallback.provider_probe()` (the cheapest realistic call for
the provider's kind), so cooldowns and operator drains are honoured exactly as
for traffic. Its result goes to `HealthCheckResult`, never into the traffic
counters. Effects on the breaker (docs/operations.md, "Health checks"):

- `FALLBACK_HEALTH_FAILURE_THRESHOLD` (3) failed checks in a row while CLOSED,
  with no traffic success within the last closed-check interval, open the
  breaker (reason `health_check`). Passive evidence wins: a provider that just
  answered real requests is not opened by a failing models list.
- A passing check while OPEN brings the half-open probe forward; it never
  closes the breaker, because a cheap check can pass while completions fail.
- `health_failed` / `health_recovered` events mark the start and the end of a
  failure streak only, so an outage writes two events, not one per check.

The lease. `HealthCheckSchedule.lease_until` is taken with one conditional
UPDATE that also requires the provider to be due; the winner checks, then
releases the lease and moves `next_check_at` forward in one UPDATE. Two beats,
two dispatchers or a backlog of queued tasks therefore check a provider once:
a second task either finds the lease held or the provider no longer due. A
lease left by a crashed worker expires after the check timeout plus a margin.
"""

import logging
import random
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Q

from ..adapters.errors import POLICY, Category
from ..adapters.redaction import scrub_secrets
from ..conf import get_setting
from ..engine import counters, metrics
from ..engine.breaker import breaker_open_for_health, breaker_probe_sooner
from ..engine.clock import get_clock
from ..engine.counters import bucket_of
from ..engine.events import failover_event_record
from ..engine.fallback import ProbeOutcome, provider_probe
from ..models import (
    BreakerState,
    FailoverEvent,
    HealthCheckResult,
    HealthCheckSchedule,
    Provider,
)
from ..selectors.providers import provider_breaker_state, provider_call_stats

logger = logging.getLogger("providers_app.health")

State = BreakerState.State

# A lease outlives the check's own timeout by this much, so a slow but live
# check is never overtaken, while a crashed worker's lease still expires soon.
LEASE_MARGIN_S = 5.0
# Up to this fraction of the interval is added at random, so checks of many
# providers (and of many deployments) do not fire in lockstep (Envoy's
# interval_jitter_percent).
JITTER_FRACTION = 0.1
DETAIL_MAX = 500

# Why a check made no upstream call.
NOT_DUE = "not_due"
LEASED = "leased"
MISSING = "missing"

_random = random.Random()


@dataclass(frozen=True)
class HealthCheckReport:
    """What one check did. `skipped` names why no call was made, else it is empty."""

    provider_id: int
    provider_name: str
    check_id: str
    skipped: str = ""
    ok: bool | None = None
    latency_ms: float | None = None
    status_code: int | None = None
    error_class: str = ""
    detail: str = ""
    consecutive_failures: int = 0
    breaker_state: str = ""
    opened_breaker: bool = False
    probe_sooner: bool = False

    @property
    def checked(self) -> bool:
        return not self.skipped


def health_dispatch_interval_s() -> float:
    """How often beat runs the dispatcher; check tasks expire after this long."""
    return float(get_setting("HEALTH_DISPATCH_S"))


def health_interval_s(state: str) -> float:
    """30 s while CLOSED (and for operator states), 10 s while OPEN or HALF_OPEN."""
    if state in (State.OPEN, State.HALF_OPEN):
        return get_setting("HEALTH_INTERVAL_OPEN_S")
    return get_setting("HEALTH_INTERVAL_CLOSED_S")


def health_due_provider_ids(*, now: datetime | None = None) -> list[int]:
    """Enabled providers whose next check is due and whose lease is free."""
    now = now or get_clock().now()
    _schedules_create()
    rows = (
        HealthCheckSchedule.objects.filter(provider__enabled=True)
        .filter(Q(next_check_at__isnull=True) | Q(next_check_at__lte=now))
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lte=now))
        .order_by("next_check_at", "provider_id")
    )
    return list(rows.values_list("provider_id", flat=True))


def health_check_run(*, provider_id: int, force: bool = False) -> HealthCheckReport:
    """Check one provider if it is due (or `force`) and no other check holds its lease.

    `force` (the admin's "check now", `manage.py check_providers`) skips the
    due time but still respects a lease held by a running check.
    """
    check_id = f"health-{uuid.uuid4().hex[:16]}"
    name = Provider.objects.filter(pk=provider_id).values_list("name", flat=True).first()
    if name is None:
        return HealthCheckReport(provider_id, "", check_id, skipped=MISSING)
    HealthCheckSchedule.objects.get_or_create(provider_id=provider_id)
    timeout_s = get_setting("HEALTH_TIMEOUT_S")
    lease = _lease_take(provider_id, timeout_s=timeout_s, force=force)
    if lease is None:
        return HealthCheckReport(provider_id, name, check_id, skipped=LEASED if force else NOT_DUE)
    state_after = ""
    try:
        # Traffic this process buffered must be visible to the no-recent-success rule.
        counters.flush_pending()
        outcome = provider_probe(provider_id=provider_id, timeout_s=timeout_s)
        report = _apply_outcome(provider_id, name, check_id, outcome, lease)
        state_after = report.breaker_state
        return report
    finally:
        _lease_release(provider_id, lease, state_after)


def health_checks_run(
    *, provider_ids: Iterable[int] | None = None, include_disabled: bool = False
) -> list[HealthCheckReport]:
    """Check providers now, in the default route's order (every enabled one by default)."""
    providers = Provider.objects.in_route_order()
    if provider_ids is not None:
        providers = providers.filter(pk__in=list(provider_ids))
    elif not include_disabled:
        providers = providers.enabled()
    return [
        health_check_run(provider_id=pk, force=True)
        for pk in providers.values_list("pk", flat=True)
    ]


# ---------------------------------------------------------------------------
# The lease
# ---------------------------------------------------------------------------


def _lease_take(provider_id: int, *, timeout_s: float, force: bool) -> datetime | None:
    """One conditional UPDATE; returns the lease's expiry (its token) or None."""
    now = get_clock().now()
    until = now + timedelta(seconds=timeout_s + LEASE_MARGIN_S)
    rows = HealthCheckSchedule.objects.filter(provider_id=provider_id).filter(
        Q(lease_until__isnull=True) | Q(lease_until__lte=now)
    )
    if not force:
        rows = rows.filter(Q(next_check_at__isnull=True) | Q(next_check_at__lte=now))
    return until if rows.update(lease_until=until) == 1 else None


def _lease_release(provider_id: int, lease: datetime, state: str) -> None:
    """Free the lease and schedule the next check, unless the lease expired and
    another check took it meanwhile (then that check owns the schedule)."""
    now = get_clock().now()
    interval = health_interval_s(state or _breaker_state(provider_id))
    next_at = now + timedelta(seconds=interval * (1 + _random.uniform(0, JITTER_FRACTION)))
    HealthCheckSchedule.objects.filter(provider_id=provider_id, lease_until=lease).update(
        lease_until=None, next_check_at=next_at
    )


def _schedules_create() -> None:
    """Providers created outside the ORM (raw imports, fixtures) get their row here."""
    missing = Provider.objects.filter(health_schedule__isnull=True).values_list("pk", flat=True)
    for provider_id in missing:
        HealthCheckSchedule.objects.get_or_create(provider_id=provider_id)


# ---------------------------------------------------------------------------
# Results and their effects
# ---------------------------------------------------------------------------


def _apply_outcome(
    provider_id: int, name: str, check_id: str, outcome: ProbeOutcome, lease: datetime
) -> HealthCheckReport:
    if outcome.skipped:  # cooling down or drained: nothing was called, nothing learnt
        logger.info(
            "health_check_skipped provider=%s reason=%s check_id=%s",
            name, outcome.skipped, check_id,
        )  # fmt: skip
        return HealthCheckReport(
            provider_id, name, check_id, skipped=outcome.skipped,
            breaker_state=_breaker_state(provider_id),
        )  # fmt: skip
    latency_ms = round(outcome.latency_s * 1000, 3)
    detail = scrub_secrets(outcome.detail)[:DETAIL_MAX]
    HealthCheckResult.objects.create(
        provider_id=provider_id,
        ok=outcome.ok,
        latency_ms=latency_ms,
        status_code=outcome.status_code,
        error_class=outcome.category[:64],
        detail=detail,
    )
    metrics.HEALTH_CHECKS.labels(provider=name, ok=str(outcome.ok).lower()).inc()
    logger.debug(
        "health_check provider=%s ok=%s latency_ms=%.1f status=%s category=%s check_id=%s",
        name, outcome.ok, latency_ms, outcome.status_code, outcome.category, check_id,
    )  # fmt: skip
    schedule = HealthCheckSchedule.objects.get(provider_id=provider_id)
    previous = schedule.consecutive_failures
    opened = sooner = False
    if outcome.ok:
        streak = 0
        _streak_set(provider_id, lease, 0)
        if previous:
            _streak_ended(provider_id, name, check_id, previous, latency_ms)
        if _breaker_state(provider_id) == State.OPEN:
            sooner = breaker_probe_sooner(provider_id=provider_id)
    elif _counts_against_health(outcome.category):
        streak = previous + 1
        _streak_set(provider_id, lease, streak)
        if previous == 0:
            _streak_started(provider_id, name, check_id, outcome, detail, latency_ms)
        opened = _maybe_open(provider_id, name, check_id, streak, outcome, detail)
    else:
        # A rate limit answers "busy", not "down": it neither extends nor ends a streak.
        streak = previous
    return HealthCheckReport(
        provider_id=provider_id,
        provider_name=name,
        check_id=check_id,
        ok=outcome.ok,
        latency_ms=latency_ms,
        status_code=outcome.status_code,
        error_class=outcome.category,
        detail=detail,
        consecutive_failures=streak,
        breaker_state=_breaker_state(provider_id),
        opened_breaker=opened,
        probe_sooner=sooner,
    )


def _counts_against_health(category: str) -> bool:
    try:
        return POLICY[Category(category)].breaker in ("failure", "open_long")
    except ValueError:  # an unknown category: a failure all the same
        return True


def _streak_set(provider_id: int, lease: datetime, value: int) -> None:
    HealthCheckSchedule.objects.filter(provider_id=provider_id, lease_until=lease).update(
        consecutive_failures=value
    )


def _streak_started(
    provider_id: int,
    name: str,
    check_id: str,
    outcome: ProbeOutcome,
    detail: str,
    latency_ms: float,
) -> None:
    failover_event_record(
        kind=FailoverEvent.Kind.HEALTH_FAILED,
        provider_id=provider_id,
        reason=outcome.category or "health_check",
        status_code=outcome.status_code,
        detail=detail,
        latency_ms=latency_ms,
        request_id=check_id,
    )
    logger.warning(
        "health_streak_started provider=%s category=%s status=%s check_id=%s",
        name, outcome.category, outcome.status_code, check_id,
    )  # fmt: skip


def _streak_ended(
    provider_id: int, name: str, check_id: str, failed_checks: int, latency_ms: float
) -> None:
    failover_event_record(
        kind=FailoverEvent.Kind.HEALTH_RECOVERED,
        provider_id=provider_id,
        reason="health_check",
        detail=f"passed after {failed_checks} failed check(s)",
        latency_ms=latency_ms,
        request_id=check_id,
    )
    logger.info(
        "health_streak_ended provider=%s failed_checks=%s check_id=%s",
        name, failed_checks, check_id,
    )  # fmt: skip


def _maybe_open(
    provider_id: int,
    name: str,
    check_id: str,
    streak: int,
    outcome: ProbeOutcome,
    detail: str,
) -> bool:
    """The 3-failure rule: CLOSED, enough failed checks, and no traffic success lately."""
    if streak < get_setting("HEALTH_FAILURE_THRESHOLD"):
        return False
    if _breaker_state(provider_id) != State.CLOSED:
        return False
    if _recent_traffic_successes(provider_id):
        logger.info(
            "health_open_skipped provider=%s reason=recent_traffic_success failed_checks=%s "
            "check_id=%s",
            name, streak, check_id,
        )  # fmt: skip
        return False
    opened = breaker_open_for_health(
        provider_id=provider_id,
        detail=f"{streak} failed health checks; last: {outcome.category} {detail}".strip(),
    )
    if opened:
        logger.warning(
            "health_opened_breaker provider=%s failed_checks=%s check_id=%s",
            name, streak, check_id,
        )  # fmt: skip
    return opened


def _recent_traffic_successes(provider_id: int) -> int:
    """Answered calls (fast or slow) within the last closed-state check interval."""
    since = bucket_of(
        get_clock().now() - timedelta(seconds=get_setting("HEALTH_INTERVAL_CLOSED_S"))
    )
    return provider_call_stats(provider_id=provider_id, since=since).answered


def _breaker_state(provider_id: int) -> str:
    return provider_breaker_state(provider_id=provider_id)
