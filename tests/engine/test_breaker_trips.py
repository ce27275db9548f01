"""When the breaker opens, how long it stays open, and how it recovers.

Real HTTP against local fault-injecting upstreams; the breaker's clock is a
FakeClock the test steps.
"""

from datetime import timedelta

import pytest

from providers_app.engine import fallback
from providers_app.engine.breaker import Denial, Permit, breaker_acquire
from providers_app.engine.counters import bucket_of
from providers_app.models import BreakerState, FailoverEvent, ProbeLease
from providers_app.selectors import route_entry_for
from providers_app.testing import breaker_state_set

from .conftest import HELLO

State = BreakerState.State


def _state(provider) -> BreakerState:
    return BreakerState.objects.get(pk=provider.pk)


def _call(expect_provider: str | None = None) -> fallback.ChatCompletion:
    result = fallback.complete(HELLO)
    if expect_provider:
        assert result.provider == expect_provider
    return result


def _opened_events(provider) -> int:
    return FailoverEvent.objects.filter(kind="breaker_opened", provider=provider).count()


def test_five_consecutive_failures_open_and_four_do_not(providers, primary, fake_clock):
    first, _ = providers(minimum_calls=100)
    primary.set_fault("error", status=500)
    for _ in range(4):
        _call("secondary")
    assert _state(first).state == State.CLOSED
    assert _state(first).consecutive_failures == 4

    _call("secondary")

    assert _state(first).state == State.OPEN
    assert _opened_events(first) == 1
    assert FailoverEvent.objects.get(kind="breaker_opened").reason == "consecutive_failures"


def test_a_success_resets_the_consecutive_count(providers, primary, fake_clock):
    first, _ = providers(minimum_calls=100)
    primary.set_fault("sequence", steps=[
        *[{"mode": "error", "options": {"status": 500}}] * 4,
        {"mode": "ok"},
        *[{"mode": "error", "options": {"status": 500}}] * 4,
    ])  # fmt: skip
    for _ in range(9):
        _call()
    assert _state(first).state == State.CLOSED
    assert _state(first).consecutive_failures == 4


def test_failure_rate_of_half_of_ten_calls_opens_on_the_tenth(providers, primary, fake_clock):
    first, _ = providers(failure_threshold=100)
    ok, error = {"mode": "ok"}, {"mode": "error", "options": {"status": 503}}
    primary.set_fault("sequence", steps=[ok, error] * 5)
    for _ in range(9):
        _call()
    assert _state(first).state == State.CLOSED

    _call()  # the 10th call, the 5th failure: 50 % of 10

    assert _state(first).state == State.OPEN
    assert FailoverEvent.objects.get(kind="breaker_opened").reason == "failure_rate"


def test_four_failures_in_ten_calls_do_not_open(providers, primary, fake_clock):
    first, _ = providers(failure_threshold=100)
    ok, error = {"mode": "ok"}, {"mode": "error", "options": {"status": 503}}
    primary.set_fault("sequence", steps=[ok] * 6 + [error] * 4 + [ok])
    for _ in range(11):
        _call()
    assert _state(first).state == State.CLOSED
    assert _opened_events(first) == 0


@pytest.mark.parametrize(("offset_ms", "opens"), [(-1, True), (1, False)])
def test_failure_counts_only_inside_the_window(providers, primary, fake_clock, offset_ms, opens):
    """A failure 1 ms inside the 60 s window counts; 1 ms outside it does not."""
    first, _ = providers(failure_threshold=100, minimum_calls=2)
    start = bucket_of(fake_clock.now()) + timedelta(seconds=10)
    fake_clock.set(start)
    primary.set_fault("error", status=500)
    _call()
    fake_clock.set(start + timedelta(seconds=60, milliseconds=offset_ms))

    _call()  # 2 calls, 2 failures if the first still counts

    assert (_state(first).state == State.OPEN) is opens


def test_open_breaker_sends_nothing_then_admits_exactly_one_probe(
    providers, primary, secondary, fake_clock
):
    first, _ = providers()
    primary.set_fault("error", status=500)
    for _ in range(5):
        _call("secondary")
    calls_when_opened = primary.request_count
    open_until = _state(first).open_until
    assert timedelta(seconds=8) <= open_until - fake_clock.now() <= timedelta(seconds=12)

    fake_clock.set(open_until - timedelta(milliseconds=1))
    for _ in range(20):
        _call("secondary")
    assert primary.request_count == calls_when_opened  # zero calls while OPEN

    fake_clock.set(open_until + timedelta(milliseconds=1))
    entry = route_entry_for(first.pk)
    probe = breaker_acquire(entry=entry, attempt_timeout_s=5)
    assert isinstance(probe, Permit)
    assert probe.is_probe
    second = breaker_acquire(entry=route_entry_for(first.pk), attempt_timeout_s=5)
    assert isinstance(second, Denial)
    assert second.reason == "half_open_busy"
    assert FailoverEvent.objects.filter(kind="breaker_half_open").count() == 1


def test_failed_probe_reopens_for_longer_and_closing_restarts_the_cycle(
    providers, primary, fake_clock
):
    first, _ = providers()
    primary.set_fault("error", status=500)
    for _ in range(5):
        _call()
    fake_clock.set(_state(first).open_until + timedelta(milliseconds=1))

    _call("secondary")  # the probe fails

    reopened = _state(first)
    assert reopened.state == State.OPEN
    assert reopened.open_cycles == 2
    wait = reopened.open_until - fake_clock.now()
    assert timedelta(seconds=16) <= wait <= timedelta(seconds=24)  # 20 s +- 20 %
    assert primary.request_count == 6

    primary.set_fault("ok")
    fake_clock.set(reopened.open_until + timedelta(milliseconds=1))
    _call("primary")  # the probe succeeds

    closed = _state(first)
    assert closed.state == State.CLOSED
    assert closed.open_cycles == 0
    assert FailoverEvent.objects.filter(kind="breaker_closed").count() == 1

    fake_clock.advance(120)  # leave the earlier failures behind
    primary.set_fault("error", status=500)
    for _ in range(5):
        _call()
    wait = _state(first).open_until - fake_clock.now()
    assert timedelta(seconds=8) <= wait <= timedelta(seconds=12)  # cycle 1 again


def test_crashed_probe_is_replaced_after_its_lease_expires_never_before(providers, fake_clock):
    first, _ = providers(timeout_s=4)
    breaker_state_set(
        first, state=State.OPEN, open_until=fake_clock.now() - timedelta(seconds=1), open_cycles=1
    )
    crashed = breaker_acquire(entry=route_entry_for(first.pk), attempt_timeout_s=4)
    assert crashed.is_probe  # this process "dies" here and never reports
    lease = ProbeLease.objects.get(lease_id=crashed.lease_id)
    assert lease.expires_at == fake_clock.now() + timedelta(seconds=4 + 5)

    fake_clock.set(lease.expires_at - timedelta(milliseconds=1))
    early = breaker_acquire(entry=route_entry_for(first.pk), attempt_timeout_s=4)
    assert isinstance(early, Denial)
    assert early.retry_at == lease.expires_at

    fake_clock.set(lease.expires_at + timedelta(milliseconds=1))
    replacement = breaker_acquire(entry=route_entry_for(first.pk), attempt_timeout_s=4)
    assert isinstance(replacement, Permit)
    assert replacement.is_probe
    assert replacement.lease_id != crashed.lease_id
    again = breaker_acquire(entry=route_entry_for(first.pk), attempt_timeout_s=4)
    assert isinstance(again, Denial)


def test_slow_successes_return_answers_and_open_on_the_slow_call_rule(providers, primary):
    first, _ = providers(slow_call_threshold_s=0.05, minimum_calls=3, failure_threshold=100)
    primary.set_fault("ok", delay_s=0.08)
    answers = [fallback.complete(HELLO) for _ in range(3)]
    assert [a.provider for a in answers] == ["primary"] * 3
    assert all("primary" in a.text for a in answers)
    assert _state(first).state == State.OPEN
    assert FailoverEvent.objects.get(kind="breaker_opened").reason == "slow_call_rate"
    assert fallback.complete(HELLO).provider == "secondary"
