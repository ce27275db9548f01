"""The usage ledger is rolled up and pruned like the other counters."""

from datetime import UTC, date, datetime, timedelta

from providers_app.engine import usage
from providers_app.models import UsageLedger
from providers_app.services import housekeeping

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def _row(day: date, shard: int, **counts) -> None:
    UsageLedger.objects.create(
        day=day, provider="p", route="r", key_name="k", shard=shard, **counts
    )


def test_shards_of_finished_days_fold_into_one_row_and_today_is_left(db):
    yesterday, today = date(2026, 3, 9), date(2026, 3, 10)
    _row(yesterday, 0, calls=1, input_tokens=10, cost_nusd=5)
    _row(yesterday, 3, calls=2, input_tokens=20, cost_nusd=7, failover_extra_nusd=-2)
    _row(yesterday, 5, calls=4, output_tokens=8)
    _row(today, 3, calls=9)

    assert housekeeping.usage_ledger_roll_up(now=NOW) == 2

    folded = UsageLedger.objects.get(day=yesterday)
    assert (folded.shard, folded.calls, folded.input_tokens, folded.output_tokens) == (0, 7, 30, 8)
    assert (folded.cost_nusd, folded.failover_extra_nusd) == (12, -2)
    assert UsageLedger.objects.get(day=today).shard == 3
    assert housekeeping.usage_ledger_roll_up(now=NOW) == 0  # nothing left to fold


def test_a_day_without_shard_zero_gets_one(db):
    _row(date(2026, 3, 1), 2, calls=3)
    housekeeping.usage_ledger_roll_up(now=NOW)
    assert list(UsageLedger.objects.values_list("shard", "calls")) == [(0, 3)]


def test_days_past_the_retention_are_pruned(db, settings):
    settings.FALLBACK_USAGE_RETENTION_DAYS = 30
    _row(NOW.date() - timedelta(days=31), 0, calls=1)
    _row(NOW.date() - timedelta(days=30), 0, calls=1)
    summary = housekeeping.history_prune(now=NOW)
    assert summary.usage_rows == 1
    assert list(UsageLedger.objects.values_list("day", flat=True)) == [
        NOW.date() - timedelta(days=30)
    ]


def test_a_worker_exit_flushes_the_buffered_usage(db):
    """What gunicorn's worker_exit and atexit call: counters' flush writes usage too."""
    usage._buffer((NOW.date(), "p", "r", "k"), {"calls": 1, "input_tokens": 4})
    housekeeping.counters_flush()
    assert UsageLedger.objects.get().input_tokens == 4
