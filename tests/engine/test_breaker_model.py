"""The database breaker against a small in-memory reference model.

Hypothesis drives random sequences of outcomes, abandoned probes and clock steps
through `services.breaker` (on the real database) and through `Model`, a plain
reading of docs/engine.md "The breaker", and checks after every step that both agree.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from providers_app.adapters.errors import Category, ProviderError
from providers_app.engine import breaker, counters
from providers_app.engine.breaker import Permit
from providers_app.engine.clock import FakeClock, set_clock
from providers_app.models import BreakerState, Provider
from providers_app.selectors import route_entry_for

ATTEMPT_TIMEOUT_S = 5.0
LEASE_S = ATTEMPT_TIMEOUT_S + 5.0
SLOW_S = 10.0
WINDOW_S = 60
OUTCOMES = ["failure"] * 10 + ["success"] * 3 + ["slow", "auth", "rate_limit", "invalid"]


@dataclass
class Model:
    """docs/engine.md "The breaker" for one provider, with the open-time jitter fixed at 1.0."""

    now: datetime
    state: str = "closed"
    consecutive: int = 0
    cycles: int = 0
    open_until: datetime | None = None
    cooldown_until: datetime | None = None
    window_reset_at: datetime | None = None
    probe_expires: datetime | None = None  # the single half-open probe's lease
    calls: list[tuple[datetime, str]] = field(default_factory=list)

    def acquire(self) -> str:
        """'normal', 'probe' or 'denied'."""
        if self.cooldown_until and self.now < self.cooldown_until:
            return "denied"
        if self.state == "closed":
            return "normal"
        if self.state == "open":
            if self.now < self.open_until:
                return "denied"
            self.state, self.probe_expires = "half_open", None
        if self.probe_expires is None or self.probe_expires < self.now:
            self.probe_expires = self.now + timedelta(seconds=LEASE_S)
            return "probe"
        return "denied"

    def record(self, permit: str, outcome: str) -> None:
        bucket = self.now.replace(microsecond=0)
        if outcome in ("success", "slow", "failure", "auth"):
            self.calls.append((bucket, outcome))
        if outcome == "rate_limit":
            until = self.now + timedelta(seconds=3)
            self.cooldown_until = max(self.cooldown_until or until, until)
        if outcome in ("rate_limit", "invalid"):
            if permit == "probe":
                self.probe_expires = None  # the slot goes back
            return
        if permit == "probe":
            if outcome == "success":
                self._close()
            else:
                self._open(long=outcome == "auth")
            return
        if outcome == "success":
            self.consecutive = 0
            return
        if outcome == "slow":  # a success, but one that can trip the rate rules
            if self._rate_trips():
                self._open(long=False)
            else:
                self.consecutive = 0
            return
        self.consecutive += 1
        if outcome == "auth" or self.consecutive >= 5 or self._rate_trips():
            self._open(long=outcome == "auth")

    def _rate_trips(self) -> bool:
        start = self.now - timedelta(seconds=WINDOW_S)
        reset = self.window_reset_at.replace(microsecond=0) if self.window_reset_at else None
        window = [o for t, o in self.calls if t > start and (reset is None or t >= reset)]
        failures = sum(o in ("failure", "auth") for o in window)
        slow = sum(o == "slow" for o in window)
        if len(window) < 10:
            return False
        return failures * 100 >= 50 * len(window) or slow * 100 >= 80 * len(window)

    def _open(self, *, long: bool) -> None:
        self.cycles += 1
        seconds = 300 if long else min(10 * 2 ** (self.cycles - 1), 20)
        self.state, self.open_until = "open", self.now + timedelta(seconds=seconds)
        self.probe_expires = None

    def _close(self) -> None:
        self.state, self.consecutive, self.cycles = "closed", 0, 0
        self.open_until, self.probe_expires, self.window_reset_at = None, None, self.now


def _error(outcome: str) -> ProviderError:
    category = {
        "failure": Category.SERVER_ERROR,
        "auth": Category.AUTH,
        "rate_limit": Category.RATE_LIMIT,
        "invalid": Category.INVALID_REQUEST,
    }[outcome]
    retry_after = 3.0 if outcome == "rate_limit" else None
    return ProviderError("x", provider="p", category=category, retry_after=retry_after)


class BreakerMachine(RuleBasedStateMachine):
    @initialize()
    def setup(self):
        Provider.objects.all().delete()
        counters.discard_pending()
        self.clock = FakeClock()
        self.previous_clock = set_clock(self.clock)
        self.provider = Provider.objects.create(
            name="p", kind="simulated", base_url="http://127.0.0.1:9/v1", model="m",
            timeout_s=ATTEMPT_TIMEOUT_S, slow_call_threshold_s=SLOW_S,
        )  # fmt: skip
        self.model = Model(now=self.clock.now())

    def teardown(self):
        if hasattr(self, "previous_clock"):
            set_clock(self.previous_clock)

    def _acquire(self) -> tuple[str, Permit | None]:
        entry = route_entry_for(self.provider.pk)
        decision = breaker.breaker_acquire(entry=entry, attempt_timeout_s=ATTEMPT_TIMEOUT_S)
        expected = self.model.acquire()
        if isinstance(decision, breaker.Denial):
            assert expected == "denied", (expected, decision)
            return expected, None
        assert expected == ("probe" if decision.is_probe else "normal"), (expected, decision)
        return expected, decision

    # Failures are drawn most often so that trips (and so every later state) are common.
    @rule(outcome=st.sampled_from(OUTCOMES))
    def call(self, outcome):
        kind, permit = self._acquire()
        if permit is None:
            return
        entry = route_entry_for(self.provider.pk)
        if outcome in ("success", "slow"):
            latency = SLOW_S * 2 if outcome == "slow" else 0.01
            breaker.breaker_record_success(entry=entry, permit=permit, latency_s=latency)
        else:
            error = _error(outcome)
            breaker.breaker_record_failure(entry=entry, permit=permit, error=error)
            if outcome == "rate_limit":  # the cooldown `decide()` asks for
                breaker.breaker_cool_down(provider_id=entry.id, seconds=error.retry_after)
        self.model.record(kind, outcome)

    @rule(outcome=st.sampled_from(OUTCOMES))
    def call_again(self, outcome):
        self.call(outcome)

    @rule()
    def abandon_probe(self):
        """A process takes a permit and dies before reporting."""
        self._acquire()

    @rule(seconds=st.one_of(st.floats(0, 2), st.floats(0, 70), st.sampled_from([30, 60, 300])))
    def advance(self, seconds):
        self.clock.advance(seconds)
        self.model.now = self.clock.now()

    @invariant()
    def agrees_with_the_model(self):
        if not hasattr(self, "provider"):
            return
        row = BreakerState.objects.get(pk=self.provider.pk)
        model = self.model
        assert row.state == model.state, (row.state, model)
        if model.state == "closed":
            assert row.consecutive_failures == model.consecutive, (row, model)
        if model.state == "open":
            assert row.open_until == model.open_until, (row.open_until, model.open_until)
        assert row.open_cycles == model.cycles
        assert row.cooldown_until == model.cooldown_until


@pytest.fixture
def fixed_jitter(monkeypatch):
    monkeypatch.setattr(breaker._random, "uniform", lambda low, high: (low + high) / 2)


@pytest.mark.django_db
def test_database_breaker_matches_the_reference_model(fixed_jitter):
    machine = BreakerMachine.TestCase
    machine.settings = settings(
        max_examples=100,
        stateful_step_count=50,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    machine().runTest()
