"""Health checks: the dispatcher, the lease, the 3-failure rule, and what a passing
check may (and may not) do to a breaker.

Celery is eager here: `dispatch_health_checks.delay()` runs the checks inline,
against local fault-injecting upstreams, on a FakeClock the test steps.
"""

import threading
from datetime import timedelta
from unittest import mock

import pytest
from django.db import connection

from providers_app import tasks
from providers_app.engine.breaker import breaker_force_open, breaker_open_for_health
from providers_app.engine.counters import bucket_of
from providers_app.models import (
    BreakerState,
    CallBucket,
    FailoverEvent,
    HealthCheckResult,
    HealthCheckSchedule,
)
from providers_app.services import health

State = BreakerState.State
Kind = FailoverEvent.Kind


def _state(provider) -> BreakerState:
    return BreakerState.objects.get(pk=provider.pk)


def _schedule(provider) -> HealthCheckSchedule:
    return HealthCheckSchedule.objects.get(pk=provider.pk)


def _events(provider, kind) -> list[FailoverEvent]:
    return list(FailoverEvent.objects.filter(provider=provider, kind=kind))


def _check_again(provider, fake_clock) -> None:
    """The next scheduled check: step to its due time and run the task."""
    fake_clock.set(_schedule(provider).next_check_at)
    assert tasks.check_provider_health.delay(provider.pk).get() is True


# ---------------------------------------------------------------------------
# Dispatch and the lease
# ---------------------------------------------------------------------------


def test_dispatcher_checks_every_due_enabled_provider_once(alpha, beta, on_upstream, fake_clock):
    first, second = on_upstream(alpha), on_upstream(beta)
    on_upstream(alpha, name="switched-off", enabled=False)

    assert tasks.dispatch_health_checks.delay().get() == 2

    assert (alpha.health_count, beta.health_count) == (1, 1)
    results = HealthCheckResult.objects.order_by("provider_id")
    assert [(r.provider_id, r.ok) for r in results] == [(first.pk, True), (second.pk, True)]
    for provider in (first, second):
        schedule = _schedule(provider)
        assert schedule.lease_until is None  # released
        wait = (schedule.next_check_at - fake_clock.now()).total_seconds()
        assert 30 <= wait <= 33  # 30 s while closed, plus up to 10 % jitter


def test_a_second_dispatch_before_the_interval_checks_nothing(alpha, on_upstream, fake_clock):
    on_upstream(alpha)
    tasks.dispatch_health_checks.delay()
    fake_clock.advance(29)

    assert tasks.dispatch_health_checks.delay().get() == 0

    assert alpha.health_count == 1


def test_two_dispatchers_at_once_check_each_provider_once(alpha, beta, on_upstream, fake_clock):
    """Both dispatchers see the same due providers (two beats, or a backlog) and
    enqueue them; the lease lets exactly one check of each run."""
    first, second = on_upstream(alpha), on_upstream(beta)
    seen_by_one = health.health_due_provider_ids()
    seen_by_other = health.health_due_provider_ids()
    assert seen_by_one == seen_by_other == [first.pk, second.pk]

    ran = [tasks.check_provider_health.delay(pk).get() for pk in seen_by_one + seen_by_other]

    assert ran == [True, True, False, False]
    assert (alpha.health_count, beta.health_count) == (1, 1)
    assert HealthCheckResult.objects.count() == 2


def test_a_check_skips_while_another_holds_the_lease_and_takes_it_once_expired(
    alpha, on_upstream, fake_clock
):
    provider = on_upstream(alpha)
    # A check started elsewhere holds the lease (timeout 5 s + margin 5 s).
    HealthCheckSchedule.objects.filter(pk=provider.pk).update(
        lease_until=fake_clock.now() + timedelta(seconds=10)
    )
    assert health.health_due_provider_ids() == []
    assert tasks.check_provider_health.delay(provider.pk).get() is False
    assert health.health_check_run(provider_id=provider.pk, force=True).skipped == health.LEASED
    assert alpha.health_count == 0

    fake_clock.advance(10)  # the holder crashed: its lease runs out

    assert tasks.check_provider_health.delay(provider.pk).get() is True
    assert alpha.health_count == 1


def test_dispatched_checks_carry_an_expiry_of_one_dispatch_interval(
    alpha, on_upstream, fake_clock, settings
):
    settings.FALLBACK_HEALTH_DISPATCH_S = 10.0
    provider = on_upstream(alpha)
    with mock.patch.object(tasks.check_provider_health, "apply_async") as apply_async:
        tasks.dispatch_health_checks()
    apply_async.assert_called_once_with(args=(provider.pk,), expires=10.0)


@pytest.mark.django_db(transaction=True)
def test_concurrent_dispatchers_check_each_provider_once_on_postgresql(alpha, beta):
    """Real threads, real connections: two dispatchers released by one barrier."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises every writer; the race needs PostgreSQL")
    from tests.factories import provider_create

    provider_create(name="alpha", base_url=alpha.base_url)
    provider_create(name="beta", base_url=beta.base_url)
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def dispatcher():
        try:
            barrier.wait(timeout=10)
            tasks.dispatch_health_checks()
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=dispatcher) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert not errors
    assert (alpha.health_count, beta.health_count) == (1, 1)
    assert HealthCheckResult.objects.count() == 2


def test_disabled_missing_and_forced_open_providers_are_not_called(alpha, on_upstream, fake_clock):
    drained = on_upstream(alpha)
    breaker_force_open(provider_id=drained.pk, until=None, actor=_user())

    report = health.health_check_run(provider_id=drained.pk)

    assert report.skipped == "forced_open"
    assert alpha.health_count == 0
    assert not HealthCheckResult.objects.exists()
    assert health.health_check_run(provider_id=999_999).skipped == health.MISSING


# ---------------------------------------------------------------------------
# Results and the breaker
# ---------------------------------------------------------------------------


def test_three_failed_checks_open_a_closed_breaker(alpha, on_upstream, fake_clock):
    provider = on_upstream(alpha)
    alpha.set_fault("error", status=503)

    tasks.dispatch_health_checks.delay()
    _check_again(provider, fake_clock)
    assert _state(provider).state == State.CLOSED
    assert _schedule(provider).consecutive_failures == 2

    _check_again(provider, fake_clock)

    assert _state(provider).state == State.OPEN
    (opened,) = _events(provider, Kind.BREAKER_OPENED)
    assert opened.reason == "health_check"
    assert HealthCheckResult.objects.filter(provider=provider, ok=False).count() == 3
    # One event for the whole streak, not one per failed check.
    (failed,) = _events(provider, Kind.HEALTH_FAILED)
    assert failed.status_code == 503
    # Open: checked every 10 s (plus jitter) instead of 30 s.
    wait = (_schedule(provider).next_check_at - fake_clock.now()).total_seconds()
    assert 10 <= wait <= 11


def test_recent_traffic_success_keeps_the_breaker_closed(alpha, on_upstream, fake_clock):
    """Passive evidence wins: real requests answered within the last interval."""
    provider = on_upstream(alpha)
    alpha.set_fault("error", status=500)
    for _ in range(3):
        health.health_check_run(provider_id=provider.pk, force=True)
        CallBucket.objects.create(
            provider=provider, bucket_start=bucket_of(fake_clock.now()), successes=1
        )
        fake_clock.advance(10)
    assert _schedule(provider).consecutive_failures == 3
    assert _state(provider).state == State.CLOSED

    fake_clock.advance(31)  # the last traffic success is now older than the interval
    health.health_check_run(provider_id=provider.pk, force=True)

    assert _state(provider).state == State.OPEN


def test_a_passing_check_while_open_brings_the_probe_forward_but_never_closes(
    alpha, on_upstream, fake_clock
):
    provider = on_upstream(alpha)
    breaker_open_for_health(provider_id=provider.pk, detail="test")
    HealthCheckSchedule.objects.filter(pk=provider.pk).update(consecutive_failures=3)
    assert _state(provider).open_until > fake_clock.now()

    for _ in range(5):
        report = health.health_check_run(provider_id=provider.pk, force=True)
        assert report.ok is True
        fake_clock.advance(1)

    state = _state(provider)
    assert state.state == State.OPEN  # only real traffic closes a breaker
    assert state.open_until <= fake_clock.now()  # the next request may probe now
    assert not _events(provider, Kind.BREAKER_CLOSED)
    assert len(_events(provider, Kind.HEALTH_RECOVERED)) == 1


def test_streak_start_and_end_write_one_event_each(alpha, on_upstream, fake_clock):
    provider = on_upstream(alpha)
    for mode in ("error", "error", "ok", "ok"):
        alpha.set_fault(mode, **({"status": 500} if mode == "error" else {}))
        health.health_check_run(provider_id=provider.pk, force=True)

    assert len(_events(provider, Kind.HEALTH_FAILED)) == 1
    (recovered,) = _events(provider, Kind.HEALTH_RECOVERED)
    assert "after 2 failed" in recovered.detail
    assert _schedule(provider).consecutive_failures == 0


def test_a_rate_limited_check_neither_extends_nor_ends_a_streak(alpha, on_upstream, fake_clock):
    provider = on_upstream(alpha)
    alpha.set_fault("error", status=500)
    health.health_check_run(provider_id=provider.pk, force=True)
    alpha.set_fault("rate_limit", retry_after="0")

    report = health.health_check_run(provider_id=provider.pk, force=True)

    assert report.ok is False
    assert report.error_class == "rate_limit"
    assert _schedule(provider).consecutive_failures == 1
    assert not _events(provider, Kind.HEALTH_RECOVERED)


def test_checks_never_touch_the_traffic_counters(alpha, on_upstream, fake_clock):
    provider = on_upstream(alpha)
    alpha.set_fault("error", status=500)
    for _ in range(4):
        health.health_check_run(provider_id=provider.pk, force=True)
    assert not CallBucket.objects.exists()
    assert _state(provider).consecutive_failures == 0  # the breaker's own counter


def _user():
    from django.contrib.auth import get_user_model

    return get_user_model().objects.get_or_create(username="ops")[0]
