"""The breaker shared by several processes through PostgreSQL: the three races of
docs/engine.md "The breaker" (one probe, one open event, a dead probe replaced).

Real processes (spawned, each with its own `django.setup()`), real wall-clock
time, real HTTP against local simulators. Each race is repeated ROUNDS times on
the same worker processes; this process resets the state between rounds. Every
round's observations are compared with exact expected counts, and all the
rounds that differ are reported together, by round number.

The races do not depend on how fast this machine is: where a request must still
be in flight while the others run, the primary *holds* it (fault "hang") until
this process has seen every other request arrive, then lets go of it.
"""

import os
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta

import pytest

from providers_app.conf import DEFAULTS
from providers_app.engine.clock import get_clock
from providers_app.models import BreakerState, CallBucket, FailoverEvent, ProbeLease
from providers_app.testing import breaker_state_set

from .procs import Burst, Outcome, WorkerPool

pytestmark = [
    pytest.mark.integration,
    pytest.mark.postgres,
    pytest.mark.usefixtures("postgresql_only", "fresh_process_state"),
]

State = BreakerState.State
ROUNDS = int(os.environ.get("BREAKER_RACE_ROUNDS", "20"))  # the nightly run sets 100
HOLD_TIMEOUT_S = 60.0  # how long the primary holds requests waiting for the rest to arrive
FAILURE_THRESHOLD = 5
OPEN_BASE_S = DEFAULTS["BREAKER_OPEN_BASE_S"]  # the first cycle's open time, +- 20 %


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def _reset_round(provider, **breaker_fields) -> BreakerState:
    """A clean slate for one round: the breaker row as given (CLOSED and zeroed
    otherwise), and no leases, events or call buckets. The generation is kept:
    it only ever grows, as in production."""
    ProbeLease.objects.all().delete()
    FailoverEvent.objects.all().delete()
    CallBucket.objects.all().delete()
    fields = {
        "consecutive_failures": 0,
        "opened_at": None,
        "open_until": None,
        "open_cycles": 0,
        "half_open_started_at": None,
        "probes_permitted": 1,
        "probes_issued": 0,
        "probes_succeeded": 0,
        "cooldown_until": None,
        "window_reset_at": get_clock().now(),
        "last_error": "",
        **breaker_fields,
    }
    breaker_state_set(provider, **{"state": State.CLOSED, **fields})
    return BreakerState.objects.get(pk=provider.pk)


def _expired_open(**fields) -> dict:
    """OPEN (first cycle) whose `open_until` has just passed."""
    now = get_clock().now()
    return {
        "state": State.OPEN,
        "open_cycles": 1,
        "opened_at": now - timedelta(seconds=30),
        "open_until": now - timedelta(milliseconds=1),
        **fields,
    }


def _run_holding_primary(pool, burst, workers, primary, release_when: Callable[[], bool]):
    """Run a burst while the primary holds every request it gets; once
    `release_when()` is true, let go of them (they fail: the connection is
    dropped without an answer). Returns (outcomes, whether the hold timed out)."""
    primary.set_fault("hang")
    pool.send(burst, workers)
    arrived = _wait_until(lambda: release_when() or pool.finished(), timeout_s=HOLD_TIMEOUT_S)
    primary.set_fault("ok")
    return pool.collect(), not (arrived and release_when())


def _wait_until(condition: Callable[[], bool], *, timeout_s: float) -> bool:
    give_up = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > give_up:
            return False
        time.sleep(0.002)
    return True


def _events(kind: str) -> int:
    return FailoverEvent.objects.filter(kind=kind).count()


def _answered(outcomes: list[Outcome]) -> dict[str, int]:
    return dict(Counter(o.provider or f"error: {o.error}" for o in outcomes))


def _primary_skips(outcomes: list[Outcome]) -> dict[str, int]:
    """Why the breaker skipped the primary, counted over the requests."""
    return dict(Counter(why for o in outcomes for name, why in o.skipped if name == "primary"))


def _primary_failures(outcomes: list[Outcome]) -> dict[str, int]:
    """How the primary failed, counted over the requests that tried it."""
    return dict(Counter(str(why) for o in outcomes for name, why in o.failed if name == "primary"))


def _report(violations: list[str], elapsed_s: float) -> str:
    header = f"{len(violations)} of {ROUNDS} rounds violated ({elapsed_s:.1f} s):"
    return "\n".join([header, *violations])


# ---------------------------------------------------------------------------
# Scenario 5: one probe across processes
# ---------------------------------------------------------------------------


def test_just_after_open_until_exactly_one_request_probes_across_four_processes(
    worker_pool, providers, primary, secondary
):
    """4 processes x 50 requests (10 threads each) released together by a barrier
    just after `open_until`, one probe permitted: exactly 1 request reaches the
    primary and the 199 others go to the secondary, told the half-open slot is
    busy, while the probe is held in flight; exactly one OPEN -> HALF_OPEN event.
    The probe then fails (its connection is dropped), which reopens the breaker
    once, for the second cycle, and the request fails over to the secondary."""
    first, _ = providers(timeout_s=30)  # the probe must outlive the whole burst

    def all_arrived() -> bool:  # or a 2nd request reached the primary: a violation already
        return primary.request_count + secondary.request_count >= 200 or primary.request_count > 1

    violations = []
    started = time.monotonic()
    for round_ in range(1, ROUNDS + 1):
        primary.reset()
        secondary.reset()
        _reset_round(first, **_expired_open())

        outcomes, hold_timed_out = _run_holding_primary(
            worker_pool,
            Burst(round_, requests=50, threads=10, barrier=4),
            workers=4,
            primary=primary,
            release_when=all_arrived,
        )

        row = BreakerState.objects.get(pk=first.pk)
        seen = {
            "primary_requests": primary.request_count,
            "secondary_requests": secondary.request_count,
            "answered_by": _answered(outcomes),
            "primary_skipped_as": _primary_skips(outcomes),
            "primary_failed_as": _primary_failures(outcomes),
            "half_open_events": _events("breaker_half_open"),
            "opened_events": _events("breaker_opened"),
            "closed_events": _events("breaker_closed"),
            "lease_outcomes": sorted(ProbeLease.objects.values_list("outcome", flat=True)),
            "state": row.state,
            "open_cycles": row.open_cycles,
            "hold_timed_out": hold_timed_out,
        }
        expected = {
            "primary_requests": 1,
            "secondary_requests": 200,  # 199 skipped the primary, 1 failed over from it
            "answered_by": {"secondary": 200},
            "primary_skipped_as": {"half_open_busy": 199},
            "primary_failed_as": {"transport": 1},
            "half_open_events": 1,
            "opened_events": 1,
            "closed_events": 0,
            "lease_outcomes": [ProbeLease.Outcome.FAILURE],
            "state": State.OPEN,
            "open_cycles": 2,
            "hold_timed_out": False,
        }
        if seen != expected:
            violations.append(f"round {round_}: saw {_diff(seen, expected)}")
    assert not violations, _report(violations, time.monotonic() - started)


def _diff(seen: dict, expected: dict) -> dict:
    """Only what differs, as {key: (seen, expected)}."""
    return {k: (seen[k], expected[k]) for k in expected if seen[k] != expected[k]}


# ---------------------------------------------------------------------------
# Scenario 7: exactly one OPEN transition when 8 processes cross the threshold
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("processes", "threads"),
    [(8, 1), (4, 2)],
    ids=["8-processes-x-1-thread", "4-threaded-processes-x-2-threads"],
)
def test_eight_requests_crossing_the_threshold_write_exactly_one_open_event(
    worker_pool, providers, primary, secondary, processes, threads
):
    """CLOSED with threshold-1 consecutive failures; 8 requests (8 processes x 1,
    or 4 threaded processes x 2 threads sharing their process's snapshot and
    buffers, as gthread workers do), released by a barrier. The primary holds
    all 8 until the 8th has arrived, then fails them all at once (dropped
    connection, one attempt each), so 8 requests record the threshold-crossing
    failure together: exactly one `breaker_opened` event, one transition
    (generation + 1), one `open_until` (first cycle: FALLBACK_BREAKER_OPEN_BASE_S
    +- 20 %), and all 8 requests are served by the secondary."""
    first, _ = providers(failure_threshold=FAILURE_THRESHOLD)
    violations = []
    started = time.monotonic()
    for round_ in range(1, ROUNDS + 1):
        primary.reset()
        secondary.reset()
        before = _reset_round(first, consecutive_failures=FAILURE_THRESHOLD - 1)

        outcomes, hold_timed_out = _run_holding_primary(
            worker_pool,
            Burst(round_, requests=threads, threads=threads, barrier=processes),
            workers=processes,
            primary=primary,
            release_when=lambda: primary.request_count >= 8,
        )

        row = BreakerState.objects.get(pk=first.pk)
        opened = list(FailoverEvent.objects.filter(kind="breaker_opened"))
        open_for = (row.open_until - row.opened_at).total_seconds() if row.open_until else None
        seen = {
            "primary_requests": primary.request_count,
            "secondary_requests": secondary.request_count,
            "answered_by": _answered(outcomes),
            "primary_failed_as": _primary_failures(outcomes),
            "opened_events": len(opened),
            "opened_reasons": sorted(e.reason for e in opened),
            "transitions": row.generation - before.generation,
            "state": row.state,
            "open_cycles": row.open_cycles,
            "open_until_in_first_cycle": open_for is not None
            and 0.8 * OPEN_BASE_S <= open_for <= 1.2 * OPEN_BASE_S,
            "hold_timed_out": hold_timed_out,
        }
        expected = {
            "primary_requests": 8,
            "secondary_requests": 8,
            "answered_by": {"secondary": 8},
            "primary_failed_as": {"transport": 8},
            "opened_events": 1,
            "opened_reasons": ["consecutive_failures"],
            "transitions": 1,
            "state": State.OPEN,
            "open_cycles": 1,
            "open_until_in_first_cycle": True,
            "hold_timed_out": False,
        }
        if seen != expected:
            violations.append(f"round {round_}: saw {_diff(seen, expected)} (open {open_for} s)")
    assert not violations, _report(violations, time.monotonic() - started)


# ---------------------------------------------------------------------------
# Scenario 6: a probe killed mid-call is replaced after its lease, never before
# ---------------------------------------------------------------------------

ATTEMPT_TIMEOUT_S = 1.0
LEASE_EXTRA_S = 1.0
# The "before" phase stops starting requests this long before the lease expires.
BEFORE_MARGIN_S = 0.1
REPLACEMENT_DELAY_S = 0.5  # the replacement probe's answer time (below the 1 s timeout)


def test_a_killed_probe_is_replaced_after_its_lease_expires_never_before(
    worker_pool, worker_env, providers, primary, secondary
):
    """A probe's process is SIGKILLed while the primary hangs. Until its lease
    (attempt timeout 1 s + 1 s) expires, 4 processes calling continuously never
    reach the primary. After it, 20 requests are released together: between the
    expiry and the breaker closing exactly one request reaches the primary, the
    new probe; it succeeds, and the breaker closes (it does not stay half-open)."""
    first, _ = providers(timeout_s=ATTEMPT_TIMEOUT_S)
    with WorkerPool(1, worker_env(BREAKER_LEASE_EXTRA_S=LEASE_EXTRA_S)) as victim:
        _reset_round(first, **_expired_open())
        primary.set_fault("hang")
        victim.send(Burst(1), workers=1)
        assert _wait_until(lambda: primary.request_count == 1, timeout_s=30), "no probe arrived"
        victim.kill(0)  # SIGKILL while the primary hangs, well within its 1 s timeout

    # The victim took the only probe slot and died without reporting.
    lease = ProbeLease.objects.get()
    row = BreakerState.objects.get(pk=first.pk)
    assert (row.state, row.probes_issued, lease.outcome) == (State.HALF_OPEN, 1, "")
    lease_s = (lease.expires_at - lease.issued_at).total_seconds()
    assert lease_s == ATTEMPT_TIMEOUT_S + LEASE_EXTRA_S
    assert _events("breaker_half_open") == 1
    expires = lease.expires_at.timestamp()
    primary.set_fault("ok", delay_s=REPLACEMENT_DELAY_S)  # also frees the hung handler

    # Before the expiry: 4 processes call continuously (one thread each).
    before = worker_pool.run(Burst(2, threads=1, until=expires - BEFORE_MARGIN_S), workers=4)
    # After it: 4 processes x 5 requests released together.
    time.sleep(max(expires + 0.02 - time.time(), 0))
    after = worker_pool.run(Burst(3, requests=5, threads=5, barrier=4), workers=4)

    # Nothing reached the primary before the lease expired; between the expiry and
    # the close exactly one request did (later ones found the breaker CLOSED).
    closed_at = FailoverEvent.objects.get(kind="breaker_closed").created_at.timestamp()
    victim_probe, *later = primary.request_times
    assert victim_probe < expires
    early = [round(expires - t, 3) for t in later if t < expires]
    assert early == [], f"requests reached the primary this many seconds early: {early}"
    probes = [t for t in later if expires <= t < closed_at]
    assert len(probes) == 1, f"{len(probes)} requests reached the primary while half-open"
    # Every other request went to the secondary because the half-open slot was busy.
    outcomes = before + after
    assert len(before) >= 4
    assert all(o.provider for o in outcomes), _answered(outcomes)
    assert sum(o.provider == "primary" for o in outcomes) == len(later)
    busy = [o for o in outcomes if o.provider == "secondary"]
    assert _primary_skips(busy) == {"half_open_busy": len(busy)}

    # The replacement held a new lease and succeeded: the breaker closed, once.
    replacement = ProbeLease.objects.get()
    assert (replacement.lease_id != lease.lease_id, replacement.outcome) == (True, "success")
    row = BreakerState.objects.get(pk=first.pk)
    assert row.state == State.CLOSED
    assert (_events("breaker_half_open"), _events("breaker_closed")) == (1, 1)
