"""The circuit breaker, shared by every process through the database.

This module is the only writer of `BreakerState` and `ProbeLease`. Every state
transition is one conditional UPDATE on `(state, generation)`: the process whose
update matched writes the transition event in the same transaction, and every
other process sees zero rows and does nothing, so each transition is recorded
exactly once. No lock or transaction is held while an upstream call runs.

The happy path (CLOSED, a fast success) reads only the routing snapshot and
writes nothing: its counters are buffered in `counters`. A database error never
fails a request: the breaker then answers from the snapshot it was given.
"""

import logging
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from django.db import DatabaseError, transaction
from django.db.models import F, Q

from ..adapters.errors import ProviderError
from ..conf import get_setting
from ..models import BreakerState, FailoverEvent, ProbeLease, Provider
from ..reasons import Reason
from ..selectors import RouteEntry, route_entry_for
from . import counters, metrics
from .clock import get_clock
from .events import failover_event_record
from .routing import routing_changed

logger = logging.getLogger("providers_app.breaker")

State = BreakerState.State
T = TypeVar("T")

Skip = FailoverEvent.SkipReason
Manual = FailoverEvent.ManualReason

# Skip reasons, as recorded in results, metrics and the API's error body.
COOLDOWN = Skip.COOLDOWN
OPEN = Skip.OPEN
FORCED_OPEN = Skip.FORCED_OPEN
HALF_OPEN_BUSY = Skip.HALF_OPEN_BUSY
STORE_UNAVAILABLE = Skip.BREAKER_STORE_UNAVAILABLE

# The event kind each target state writes.
TRANSITION_EVENT = {
    State.OPEN: FailoverEvent.Kind.BREAKER_OPENED,
    State.HALF_OPEN: FailoverEvent.Kind.BREAKER_HALF_OPEN,
    State.CLOSED: FailoverEvent.Kind.BREAKER_CLOSED,
}

_random = random.Random()


@dataclass(frozen=True)
class BreakerSettings:
    failure_threshold: int
    failure_rate: int
    slow_call_rate: int
    slow_call_s: float
    minimum_calls: int
    open_base_s: float
    open_max_s: float
    probes: int


def breaker_settings(entry: RouteEntry) -> BreakerSettings:
    """The provider's overrides, else the FALLBACK_BREAKER_* defaults."""

    def pick(override, name):
        return override if override is not None else get_setting(name)

    return BreakerSettings(
        failure_threshold=pick(entry.failure_threshold, "BREAKER_FAILURE_THRESHOLD"),
        failure_rate=pick(entry.failure_rate_threshold, "BREAKER_FAILURE_RATE"),
        slow_call_rate=pick(entry.slow_call_rate_threshold, "BREAKER_SLOW_CALL_RATE"),
        slow_call_s=pick(entry.slow_call_threshold_s, "BREAKER_SLOW_CALL_S"),
        minimum_calls=pick(entry.minimum_calls, "BREAKER_MINIMUM_CALLS"),
        open_base_s=pick(entry.open_base_s, "BREAKER_OPEN_BASE_S"),
        open_max_s=pick(entry.open_max_s, "BREAKER_OPEN_MAX_S"),
        probes=pick(entry.half_open_probes, "BREAKER_HALF_OPEN_PROBES"),
    )


@dataclass(frozen=True)
class Permit:
    """Leave to call a provider. A half-open probe carries the lease it holds."""

    provider_id: int
    generation: int
    lease_id: uuid.UUID | None = None

    @property
    def is_probe(self) -> bool:
        return self.lease_id is not None


@dataclass(frozen=True)
class Denial:
    """The provider is skipped; `retry_at` is the soonest it may be tried again."""

    reason: Reason
    retry_at: datetime | None = None


def open_duration_s(cycles: int, settings: BreakerSettings, *, long: bool = False) -> float:
    """min(base * 2^(cycles-1), max) * U(0.8, 1.2); configuration failures
    (auth, quota) open for FALLBACK_BREAKER_OPEN_LONG_S * U(0.8, 1.2).

    The cap keeps recovery prompt: a provider that failed its probes during a
    long outage is probed again at most max * 1.2 after its recovery."""
    if long:
        return get_setting("BREAKER_OPEN_LONG_S") * _random.uniform(0.8, 1.2)
    nominal = settings.open_base_s * 2 ** max(cycles - 1, 0)
    return min(nominal, settings.open_max_s) * _random.uniform(0.8, 1.2)


# ---------------------------------------------------------------------------
# Admission
# ---------------------------------------------------------------------------


def breaker_acquire(*, entry: RouteEntry, attempt_timeout_s: float) -> Permit | Denial:
    """May this request call the provider? Never a bare read: an expired OPEN
    becomes HALF_OPEN here, and a half-open slot is taken with a lease."""
    now = get_clock().now()
    if entry.cooldown_until and now < entry.cooldown_until:
        return Denial(COOLDOWN, entry.cooldown_until)
    if entry.state in (State.CLOSED, State.NEVER_TRIP):
        return Permit(entry.id, entry.generation)
    if entry.state == State.FORCED_OPEN and (entry.open_until is None or now < entry.open_until):
        return Denial(FORCED_OPEN, entry.open_until)
    if entry.state == State.OPEN and entry.open_until and now < entry.open_until:
        return Denial(OPEN, entry.open_until)
    # Past an expiry, or half-open: only the database can decide. Without it,
    # probes cannot be coordinated across processes, so the last-known state
    # (not closed) keeps the provider skipped until the store answers again.
    return _guarded(
        "acquire",
        lambda: _acquire_from_database(entry, attempt_timeout_s),
        default=Denial(STORE_UNAVAILABLE, None),
    )


def _acquire_from_database(entry: RouteEntry, attempt_timeout_s: float) -> Permit | Denial:
    now = get_clock().now()
    if entry.state == State.FORCED_OPEN:
        _transition(
            entry.id, State.FORCED_OPEN, entry.generation, State.CLOSED,
            fields=_closed_fields(now), reason=Reason.FORCED_OPEN_EXPIRED,
        )  # fmt: skip
    elif entry.state == State.OPEN:
        settings = breaker_settings(entry)
        _transition(
            entry.id, State.OPEN, entry.generation, State.HALF_OPEN,
            fields={
                "half_open_started_at": now,
                "probes_permitted": settings.probes,
                "probes_issued": 0,
                "probes_succeeded": 0,
            },
            reason=Reason.OPEN_EXPIRED,
        )  # fmt: skip
    # Win or lose the transition above, the row now says what to do.
    row = BreakerState.objects.get(pk=entry.id)
    if row.cooldown_until and now < row.cooldown_until:
        return Denial(COOLDOWN, row.cooldown_until)
    if row.state in (State.CLOSED, State.NEVER_TRIP):
        return Permit(row.pk, row.generation)
    if row.state == State.OPEN:
        return Denial(OPEN, row.open_until)
    if row.state == State.FORCED_OPEN:
        return Denial(FORCED_OPEN, row.open_until)
    lease_s = attempt_timeout_s + get_setting("BREAKER_LEASE_EXTRA_S")
    return _take_probe_slot(row, now, now + timedelta(seconds=lease_s))


def _take_probe_slot(row: BreakerState, now: datetime, expires_at: datetime) -> Permit | Denial:
    """HALF_OPEN: a slot never issued, else one whose probe died (lease expired) or
    gave it back, else busy.

    Each claim is one conditional UPDATE that only the winner matches, so the
    many requests refused while a probe is in flight take no lock: they read
    two rows and move on to the next provider.
    """
    if row.probes_issued < row.probes_permitted:
        with transaction.atomic():
            won = BreakerState.objects.filter(
                pk=row.pk,
                state=State.HALF_OPEN,
                generation=row.generation,
                probes_issued=row.probes_issued,
            ).update(probes_issued=row.probes_issued + 1)
            if won:
                lease = ProbeLease.objects.create(
                    provider_id=row.pk,
                    generation=row.generation,
                    slot=row.probes_issued,
                    issued_at=now,
                    expires_at=expires_at,
                )
                return Permit(row.pk, row.generation, lease.lease_id)
    open_leases = list(
        ProbeLease.objects.filter(
            provider_id=row.pk,
            generation=row.generation,
            outcome__in=("", ProbeLease.Outcome.RELEASED),
        )
        .order_by("expires_at")
        .values("pk", "lease_id", "outcome", "expires_at")
    )
    for lease in open_leases:
        if lease["outcome"] == ProbeLease.Outcome.RELEASED or lease["expires_at"] < now:
            new_id = uuid.uuid4()
            if ProbeLease.objects.filter(pk=lease["pk"], lease_id=lease["lease_id"]).update(
                lease_id=new_id, outcome="", issued_at=now, expires_at=expires_at
            ):
                if lease["outcome"] == "":
                    logger.warning("probe lease of provider %s expired; reissued", row.pk)
                return Permit(row.pk, row.generation, new_id)
    in_flight = [lease["expires_at"] for lease in open_leases if lease["outcome"] == ""]
    return Denial(HALF_OPEN_BUSY, min(in_flight, default=None))


# ---------------------------------------------------------------------------
# Outcomes
# ---------------------------------------------------------------------------


def breaker_record_success(
    *, entry: RouteEntry, permit: Permit, latency_s: float, total_s: float | None = None
) -> None:
    """`latency_s` is the time to first output (the slow-call threshold judges it);
    `total_s` the time to the end of the answer (None: the same, not streamed)."""
    settings = breaker_settings(entry)
    slow = latency_s > settings.slow_call_s
    timing = {
        "latency_ms_sum": latency_s * 1000,
        "total_ms_sum": (latency_s if total_s is None else total_s) * 1000,
    }
    if slow:
        counters.count(entry.id, slow_calls=1, flush=True, **timing)
    else:
        counters.count(entry.id, successes=1, **timing)
    if entry.state == State.NEVER_TRIP:
        return
    if permit.is_probe:
        _guarded(
            "probe_outcome",
            lambda: _probe_finished(entry, permit, ok=not slow, reason=Reason.SLOW_CALL),
            None,
        )
        return
    if slow and _guarded(
        "record_slow", lambda: _maybe_trip(entry, permit, settings, "slow call"), False
    ):
        return
    if entry.consecutive_failures:
        # One write on the first success after a failure; none on a healthy streak.
        _guarded(
            "reset_failures",
            lambda: BreakerState.objects.filter(
                pk=entry.id, state=State.CLOSED, generation=permit.generation
            ).update(consecutive_failures=0),
            None,
        )


def breaker_record_failure(*, entry: RouteEntry, permit: Permit, error: ProviderError) -> bool:
    """Record a failed call. Returns True when the provider must not be called
    again in this request (a probe failed, or this failure opened the breaker)."""
    effect = error.policy.breaker
    if effect == "ignore":  # the caller's fault: the provider is fine
        breaker_release(permit=permit)
        return False
    if effect == "cooldown":  # the cooldown itself is the decision's (breaker_cool_down)
        counters.count(entry.id, rate_limited=1, flush=True)
        breaker_release(permit=permit)
        return False
    counters.count(entry.id, failures=1, flush=True)
    if entry.state == State.NEVER_TRIP:
        return False
    long = effect == "open_long"
    if permit.is_probe:
        _guarded(
            "probe_outcome",
            lambda: _probe_finished(
                entry, permit, ok=False, reason=error.category, long=long, detail=str(error)
            ),
            None,
        )
        return True
    return _guarded(
        "record_failure",
        lambda: _record_closed_failure(entry, permit, error, long=long),
        False,
    )


def breaker_release(*, permit: Permit) -> None:
    """Give a probe slot back unused (ignored outcome, client gone, deadline hit)."""
    if not permit.is_probe:
        return

    # The slot stays issued; the next request reclaims the released lease.
    _guarded(
        "release",
        lambda: ProbeLease.objects.filter(lease_id=permit.lease_id, outcome="").update(
            outcome=ProbeLease.Outcome.RELEASED
        ),
        None,
    )


def _record_closed_failure(
    entry: RouteEntry, permit: Permit, error: ProviderError, *, long: bool
) -> bool:
    updated = BreakerState.objects.filter(
        pk=entry.id, state=State.CLOSED, generation=permit.generation
    ).update(consecutive_failures=F("consecutive_failures") + 1, last_error=str(error)[:500])
    if not updated:  # not CLOSED any more (another process opened it), or reset meanwhile
        return True
    if long:
        row = BreakerState.objects.get(pk=entry.id)
        _open(row, breaker_settings(entry), reason=error.category, detail=str(error), long=True)
        return True
    return _maybe_trip(entry, permit, breaker_settings(entry), str(error))


def _maybe_trip(entry: RouteEntry, permit: Permit, settings: BreakerSettings, detail: str) -> bool:
    """CLOSED -> OPEN on consecutive failures, failure rate or slow-call rate.
    Returns True when the breaker is no longer CLOSED at this generation."""
    row = BreakerState.objects.get(pk=entry.id)
    if row.state != State.CLOSED or row.generation != permit.generation:
        return True
    reason = None
    if row.consecutive_failures >= settings.failure_threshold:
        reason = Reason.CONSECUTIVE_FAILURES
    else:
        window = counters.window_counts(entry.id, since=row.window_reset_at)
        if window.calls >= settings.minimum_calls:
            if window.failures * 100 >= settings.failure_rate * window.calls:
                reason = Reason.FAILURE_RATE
            elif window.slow_calls * 100 >= settings.slow_call_rate * window.calls:
                reason = Reason.SLOW_CALL_RATE
    if reason:
        _open(row, settings, reason=reason, detail=detail)
        return True
    return False


def _probe_finished(
    entry: RouteEntry,
    permit: Permit,
    *,
    ok: bool,
    reason: str,
    long: bool = False,
    detail: str = "",
) -> None:
    """All probes succeeding closes; any probe failing (or slow) reopens for longer."""
    outcome = ProbeLease.Outcome.SUCCESS if ok else ProbeLease.Outcome.FAILURE
    reported = ProbeLease.objects.filter(lease_id=permit.lease_id, outcome="").update(
        outcome=outcome
    )
    if not reported:  # the lease expired and went to another probe: ours is stale
        return
    if ok:
        BreakerState.objects.filter(
            pk=entry.id, state=State.HALF_OPEN, generation=permit.generation
        ).update(probes_succeeded=F("probes_succeeded") + 1)
    row = BreakerState.objects.get(pk=entry.id)
    if row.state != State.HALF_OPEN or row.generation != permit.generation:
        return
    if not ok:
        _open(row, breaker_settings(entry), reason=reason, detail=detail, long=long)
    elif row.probes_succeeded >= row.probes_permitted:
        _transition(
            row.pk, State.HALF_OPEN, row.generation, State.CLOSED,
            fields=_closed_fields(get_clock().now()), reason=Reason.PROBE_SUCCEEDED,
        )  # fmt: skip


def _open(
    row: BreakerState,
    settings: BreakerSettings,
    *,
    reason: str,
    detail: str = "",
    long: bool = False,
) -> bool:
    cycles = row.open_cycles + 1
    now = get_clock().now()
    return _transition(
        row.pk,
        row.state,
        row.generation,
        State.OPEN,
        fields={
            "opened_at": now,
            "open_until": now + timedelta(seconds=open_duration_s(cycles, settings, long=long)),
            "open_cycles": cycles,
            "half_open_started_at": None,
            "probes_issued": 0,
            "probes_succeeded": 0,
            "last_error": detail[:500],
        },
        reason=reason,
        detail=detail,
    )


def breaker_cool_down(*, provider_id: int, seconds: float) -> None:
    """Every process skips the provider for `seconds` (a rate limit, or a wait
    hint that was not waited out); never shortens a longer cooldown."""

    def cool_down() -> None:
        until = get_clock().now() + timedelta(seconds=seconds)
        updated = (
            BreakerState.objects.filter(pk=provider_id)
            .filter(Q(cooldown_until__isnull=True) | Q(cooldown_until__lt=until))
            .update(cooldown_until=until)
        )
        if updated:
            routing_changed()

    _guarded("cooldown", cool_down, None)


def _closed_fields(now: datetime) -> dict:
    return {
        "consecutive_failures": 0,
        "open_cycles": 0,
        "opened_at": None,
        "open_until": None,
        "half_open_started_at": None,
        "probes_issued": 0,
        "probes_succeeded": 0,
        "window_reset_at": now,
    }


# ---------------------------------------------------------------------------
# Transitions
# ---------------------------------------------------------------------------


def _transition(
    provider_id: int,
    from_state: str,
    generation: int,
    to_state: str,
    *,
    fields: dict,
    reason: str,
    detail: str = "",
    actor=None,
) -> bool:
    """CAS `(state, generation)` -> `to_state`; the winner writes the event."""
    with transaction.atomic():
        won = BreakerState.objects.filter(
            pk=provider_id, state=from_state, generation=generation
        ).update(state=to_state, generation=generation + 1, **fields)
        if not won:
            return False
        failover_event_record(
            kind=(
                FailoverEvent.Kind.MANUAL
                if actor or to_state not in TRANSITION_EVENT
                else TRANSITION_EVENT[to_state]
            ),
            provider_id=provider_id,
            reason=reason,
            detail=detail or f"{from_state} -> {to_state}",
            actor=actor,
        )
        routing_changed()
    # Transitions are rare, so naming the provider (as every other metric does)
    # is worth the extra read.
    name = Provider.objects.filter(pk=provider_id).values_list("name", flat=True).first()
    metrics.TRANSITIONS.labels(provider=name or str(provider_id), to_state=to_state).inc()
    logger.warning(
        "breaker transition provider=%s from=%s to=%s reason=%s generation=%s",
        provider_id, from_state, to_state, reason, generation + 1,
    )  # fmt: skip
    return True


def _guarded(operation: str, action: Callable[[], T], default: T) -> T:
    """Run a breaker write; a database error is logged and counted, never raised."""
    try:
        return action()
    except DatabaseError:
        logger.exception("breaker store error during %s; answering from the snapshot", operation)
        metrics.store_error(f"breaker_{operation}")
        return default


# ---------------------------------------------------------------------------
# Operator actions (admin, commands) and health checks
# ---------------------------------------------------------------------------


def _operator_set(provider_id: int, to_state: str, fields: dict, *, reason: str, actor) -> bool:
    """Move to `to_state` from whatever the state is, retrying a lost race."""
    for _ in range(5):
        row = BreakerState.objects.get(pk=provider_id)
        if _transition(
            provider_id, row.state, row.generation, to_state,
            fields=fields, reason=reason, detail=f"{row.state} -> {to_state}", actor=actor,
        ):  # fmt: skip
            return True
    return False


def breaker_reset(*, provider_id: int, actor=None) -> bool:
    """CLOSED with a clean slate: counters, cycles and cooldown cleared."""
    fields = {**_closed_fields(get_clock().now()), "cooldown_until": None, "last_error": ""}
    return _operator_set(provider_id, State.CLOSED, fields, reason=Manual.RESET, actor=actor)


def breaker_force_open(*, provider_id: int, until: datetime | None, actor=None) -> bool:
    """Drain a provider (maintenance) until `until`, or until reset when None."""
    now = get_clock().now()
    fields = {"opened_at": now, "open_until": until, "probes_issued": 0, "probes_succeeded": 0}
    return _operator_set(
        provider_id, State.FORCED_OPEN, fields, reason=Manual.FORCE_OPEN, actor=actor
    )


def breaker_force_closed(*, provider_id: int, actor=None) -> bool:
    fields = {**_closed_fields(get_clock().now()), "cooldown_until": None}
    return _operator_set(provider_id, State.CLOSED, fields, reason=Manual.FORCE_CLOSED, actor=actor)


def breaker_never_trip(*, provider_id: int, actor=None) -> bool:
    """Never trip: every call is allowed and nothing is evaluated."""
    fields = {**_closed_fields(get_clock().now()), "cooldown_until": None}
    return _operator_set(
        provider_id, State.NEVER_TRIP, fields, reason=Manual.NEVER_TRIP, actor=actor
    )


def breaker_open_for_health(*, provider_id: int, detail: str) -> bool:
    """Failed health checks open a CLOSED breaker (reason `health_check`)."""
    row = BreakerState.objects.get(pk=provider_id)
    if row.state != State.CLOSED:
        return False
    settings = breaker_settings(route_entry_for(provider_id))
    return _open(row, settings, reason=Reason.HEALTH_CHECK, detail=detail)


def breaker_retry_at(*, provider_ids: list[int]) -> dict[int, datetime | None]:
    """The soonest each provider may be called again according to its breaker
    (open or forced open until, or cooling down until); None when it may be
    called now. One query; an unreadable store says nothing (None)."""
    now = get_clock().now()

    def read() -> dict[int, datetime | None]:
        soonest: dict[int, datetime | None] = {}
        rows = BreakerState.objects.filter(pk__in=provider_ids).values_list(
            "pk", "state", "open_until", "cooldown_until"
        )
        for pk, state, open_until, cooldown_until in rows:
            times = [t for t in (cooldown_until,) if t and t > now]
            if state in (State.OPEN, State.FORCED_OPEN) and open_until and open_until > now:
                times.append(open_until)
            soonest[pk] = max(times, default=None)
        return soonest

    return _guarded("retry_at", read, {})


def breaker_probe_sooner(*, provider_id: int) -> bool:
    """A passing health check while OPEN lets the next request probe now.
    It never closes the breaker: only real traffic does."""
    now = get_clock().now()
    updated = BreakerState.objects.filter(
        pk=provider_id, state=State.OPEN, open_until__gt=now
    ).update(open_until=now)
    if updated:
        routing_changed()
    return bool(updated)
