"""Housekeeping tasks: pruning by age, the five-minute roll-up of call counters, flushing."""

from datetime import UTC, datetime, timedelta

import pytest

from providers_app import tasks
from providers_app.engine import counters
from providers_app.models import CallBucket, CallRollup, FailoverEvent, HealthCheckResult
from providers_app.selectors.call_stats import latency_bucket
from providers_app.services import housekeeping

NOW = datetime(2026, 1, 10, 12, 30, tzinfo=UTC)


@pytest.fixture
def at_noon(fake_clock):
    fake_clock.set(NOW)
    return fake_clock


@pytest.fixture
def provider(make_provider):
    return make_provider(name="p")


def _bucket(provider, moment: datetime, **counts) -> CallBucket:
    return CallBucket.objects.create(provider=provider, bucket_start=moment, **counts)


def test_prune_deletes_history_older_than_the_retention(provider, at_noon, settings):
    settings.FALLBACK_EVENT_RETENTION_DAYS = 30
    old, recent = NOW - timedelta(days=30, seconds=1), NOW - timedelta(days=29)
    for moment in (old, recent):
        event = FailoverEvent.objects.create(kind="failover", provider=provider)
        FailoverEvent.objects.filter(pk=event.pk).update(created_at=moment)
        result = HealthCheckResult.objects.create(provider=provider, ok=True)
        HealthCheckResult.objects.filter(pk=result.pk).update(checked_at=moment)

    assert tasks.prune_history.delay().get() == 2

    assert list(FailoverEvent.objects.values_list("created_at", flat=True)) == [recent]
    assert list(HealthCheckResult.objects.values_list("checked_at", flat=True)) == [recent]


def test_rollup_rows_outlive_a_short_retention_so_the_week_chart_stays_whole(
    provider, at_noon, settings
):
    settings.FALLBACK_EVENT_RETENTION_DAYS = 1
    for days in (2, 8):
        CallRollup.objects.create(
            provider=provider, period_start=housekeeping.hour_of(NOW) - timedelta(days=days)
        )

    summary = housekeeping.history_prune()

    assert summary.rollups == 1
    assert CallRollup.objects.get().period_start == housekeeping.hour_of(NOW) - timedelta(days=2)


def test_roll_up_sums_each_period_and_builds_both_latency_histograms(provider, at_noon):
    ten = datetime(2026, 1, 10, 10, 0, tzinfo=UTC)
    _bucket(provider, ten + timedelta(seconds=1), successes=1, latency_ms_sum=80,
            total_ms_sum=80, first_attempts=1)  # fmt: skip
    _bucket(provider, ten + timedelta(seconds=2), successes=2, latency_ms_sum=600,
            total_ms_sum=12000, first_attempts=3)  # fmt: skip
    _bucket(provider, ten + timedelta(minutes=4, seconds=59), failures=1, retries=1,
            rate_limited=2)  # fmt: skip
    _bucket(provider, ten + timedelta(minutes=5), successes=1, latency_ms_sum=70)
    _bucket(provider, ten + timedelta(hours=2, minutes=27), slow_calls=1, latency_ms_sum=31000)

    assert tasks.roll_up_call_counters.delay().get() == 3

    done, next_one, current = CallRollup.objects.order_by("period_start")
    assert done.period_start == ten
    assert done.final
    assert (done.successes, done.failures, done.retries, done.rate_limited) == (3, 1, 1, 2)
    assert done.first_attempts == 4
    assert (done.latency_ms_sum, done.total_ms_sum) == (680, 12080)
    # 1 call at 80 ms (<= 100), 2 calls at a mean of 300 ms (<= 500) to first output,
    # and 6 s in total (<= 10000).
    assert done.latency_histogram == {"100": 1, "500": 2}
    assert done.total_histogram == {"100": 1, "10000": 2}
    assert (next_one.period_start, next_one.successes) == (ten + timedelta(minutes=5), 1)
    assert current.period_start == ten + timedelta(hours=2, minutes=25)
    assert not current.final
    assert current.latency_histogram == {"45000": 1}
    # The finished periods' one-second buckets are gone; the open period keeps its own.
    assert list(CallBucket.objects.values_list("bucket_start", flat=True)) == [
        ten + timedelta(hours=2, minutes=27)
    ]


def test_roll_up_is_idempotent_and_catches_up_the_open_period(provider, at_noon):
    noon = housekeeping.period_of(NOW) - timedelta(minutes=5)  # open: within the grace
    _bucket(provider, noon + timedelta(seconds=1), successes=1, latency_ms_sum=40)
    housekeeping.call_counters_roll_up()
    housekeeping.call_counters_roll_up()
    assert CallRollup.objects.get().successes == 1

    _bucket(provider, noon + timedelta(seconds=2), successes=4, latency_ms_sum=160)
    housekeeping.call_counters_roll_up()

    row = CallRollup.objects.get()
    assert (row.successes, row.final) == (5, False)
    assert row.latency_histogram == {"50": 5}


def test_a_period_becomes_final_only_after_the_grace_period(provider, fake_clock):
    eleven = datetime(2026, 1, 10, 11, 0, tzinfo=UTC)
    _bucket(provider, eleven + timedelta(minutes=4, seconds=59), successes=1)
    # 11:19: buffers may still flush, and the dashboard's live range reads the buckets
    fake_clock.set(eleven + timedelta(minutes=5) + housekeeping.FINAL_GRACE - timedelta(minutes=1))

    housekeeping.call_counters_roll_up()
    assert not CallRollup.objects.get().final
    assert CallBucket.objects.count() == 1

    fake_clock.set(eleven + timedelta(minutes=5) + housekeeping.FINAL_GRACE)
    housekeeping.call_counters_roll_up()
    assert CallRollup.objects.get().final
    assert not CallBucket.objects.exists()


def test_late_buckets_of_a_final_period_are_added_not_overwritten(provider, at_noon):
    ten = datetime(2026, 1, 10, 10, 0, tzinfo=UTC)
    _bucket(provider, ten + timedelta(seconds=1), successes=3, latency_ms_sum=300)
    housekeeping.call_counters_roll_up()
    _bucket(provider, ten + timedelta(seconds=9), shard=1, failures=2)  # a late flush

    housekeeping.call_counters_roll_up()

    row = CallRollup.objects.get()
    assert (row.successes, row.failures, row.final) == (3, 2, True)
    assert row.latency_histogram == {"100": 3}
    assert not CallBucket.objects.exists()


@pytest.mark.parametrize(
    ("latency_ms", "bucket"),
    [(0, "50"), (50, "50"), (50.1, "100"), (45000, "45000"), (45001, "inf")],
)
def test_latency_bucket_bounds_are_inclusive(latency_ms, bucket):
    assert latency_bucket(latency_ms) == bucket


def test_flush_counters_task_writes_what_this_process_buffered(provider, at_noon):
    counters.count(provider.pk, successes=2, latency_ms_sum=20)
    assert not CallBucket.objects.exists()

    tasks.flush_counters.delay()

    bucket = CallBucket.objects.get()
    assert (bucket.successes, bucket.latency_ms_sum) == (2, 20)


def test_prune_deletes_probe_leases_of_half_open_rounds_that_are_over(provider, at_noon):
    """Leases behind their breaker's generation are dead; the current round's stay."""
    from providers_app.engine.breaker import breaker_acquire, breaker_reset
    from providers_app.models import ProbeLease
    from providers_app.selectors import route_entry_for
    from providers_app.testing import breaker_state_set

    def probe():
        breaker_state_set(
            provider, state="open", open_until=NOW - timedelta(seconds=1), open_cycles=1
        )
        permit = breaker_acquire(entry=route_entry_for(provider.pk), attempt_timeout_s=4)
        assert permit.is_probe
        return permit

    finished = probe()
    breaker_reset(provider_id=provider.pk)  # the round ends: a new generation
    current = probe()

    summary = housekeeping.history_prune()

    assert summary.probe_leases == 1
    assert list(ProbeLease.objects.values_list("lease_id", flat=True)) == [current.lease_id]
    assert finished.lease_id != current.lease_id
    assert housekeeping.history_prune().probe_leases == 0  # the current round's lease stays
