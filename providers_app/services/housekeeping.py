"""Housekeeping: prune old history, roll call counters up into five-minute rows for charts.

`CallBucket` holds one-second counters that the breaker window and the retry
budget read; they are worth keeping only for a few minutes. The roll-up turns
them into one `CallRollup` row per provider and five-minute period (counts, and
histograms of time to first output and total time for p50/p95), re-computing
every period that still has buckets, so it is idempotent and a late run catches
up. Once a period is over (plus a grace period for buffered counters still on
their way) its row is marked final and its buckets are deleted: buckets are
pruned only after they were rolled up, in the same transaction, so a bucket is
always either in the table or in a final row (the dashboard relies on it).

Latency. A bucket row holds latency sums, not each call; `CallStats.of_bucket`
places its calls at the row's mean (see docs/operations.md).
"""

import logging
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import F, OuterRef, Subquery

from ..conf import get_setting
from ..engine import counters
from ..engine.clock import get_clock
from ..models import (
    BreakerState,
    CallBucket,
    CallRollup,
    FailoverEvent,
    FailureBucket,
    HealthCheckResult,
    ProbeLease,
    RequestTrace,
    UsageLedger,
)
from ..selectors.call_stats import FINE_HISTORY, CallStats, hour_of, period_of

logger = logging.getLogger("providers_app.housekeeping")

# Buffered counters reach the database within FALLBACK_COUNTER_FLUSH_S (2 s); a
# period is final this long after it ends, so no late flush is lost to pruning,
# and /api/status's five-minute window never loses a bucket to it.
# The dashboard's 15-minute and one-hour ranges draw one-second buckets in 15 s
# and 30 s bins: they stay at least FINE_HISTORY (1 h) after their period ends,
# so those ranges never meet a five-minute row.
FINAL_GRACE = FINE_HISTORY
# Rollup rows back the 7-day charts: keep them at least that long.
MIN_ROLLUP_RETENTION_DAYS = 7

SUM_FIELDS = ("latency_ms_sum", "total_ms_sum")
COUNT_FIELDS = tuple(name for name in counters.FIELDS if name not in SUM_FIELDS)


@dataclass(frozen=True)
class PruneSummary:
    events: int
    health_results: int
    rollups: int
    probe_leases: int = 0
    traces: int = 0
    usage_rows: int = 0


@dataclass(frozen=True)
class RollupSummary:
    hours: int  # (provider, period) rows written (named before periods were five minutes)
    final: int  # of which final
    buckets_pruned: int


def history_prune(*, now: datetime | None = None) -> PruneSummary:
    """Delete events and health results older than FALLBACK_EVENT_RETENTION_DAYS,
    and request traces older than FALLBACK_TRACE_RETENTION_DAYS."""
    now = now or get_clock().now()
    days = get_setting("EVENT_RETENTION_DAYS")
    cutoff = now - timedelta(days=days)
    rollup_cutoff = now - timedelta(days=max(days, MIN_ROLLUP_RETENTION_DAYS))
    events, _ = FailoverEvent.objects.filter(created_at__lt=cutoff).delete()
    results, _ = HealthCheckResult.objects.filter(checked_at__lt=cutoff).delete()
    rollups, _ = CallRollup.objects.filter(period_start__lt=hour_of(rollup_cutoff)).delete()
    FailureBucket.objects.filter(bucket_start__lt=hour_of(rollup_cutoff)).delete()
    leases = probe_leases_prune()
    trace_cutoff = now - timedelta(days=get_setting("TRACE_RETENTION_DAYS"))
    traces, _ = RequestTrace.objects.filter(created_at__lt=trace_cutoff).delete()
    usage_cutoff = (now - timedelta(days=get_setting("USAGE_RETENTION_DAYS"))).date()
    usage_rows, _ = UsageLedger.objects.filter(day__lt=usage_cutoff).delete()
    summary = PruneSummary(
        events=events,
        health_results=results,
        rollups=rollups,
        probe_leases=leases,
        traces=traces,
        usage_rows=usage_rows,
    )
    logger.info(
        "history_pruned events=%s health_results=%s rollups=%s probe_leases=%s traces=%s "
        "usage_rows=%s retention_days=%s trace_retention_days=%s",
        events, results, rollups, leases, traces, usage_rows, days,
        get_setting("TRACE_RETENTION_DAYS"),
    )  # fmt: skip
    return summary


USAGE_SUM_FIELDS = (
    "calls",
    "estimated_calls",
    "failed_attempts",
    "input_tokens",
    "cached_input_tokens",
    "output_tokens",
    "cost_nusd",
    "failed_cost_nusd",
    "failover_extra_nusd",
)


def usage_ledger_roll_up(*, now: datetime | None = None) -> int:
    """Fold the per-process shards of finished days into shard 0; returns the rows folded.

    A day is finished FINAL_GRACE after midnight UTC (no buffered flush is still
    on its way). Each (day, provider, route, key) is folded under a row lock, so
    a late flush into a shard row either lands before the fold (and is summed)
    or creates a new shard row that the next roll-up folds.
    """
    now = now or get_clock().now()
    last_finished_day = (now - FINAL_GRACE).date() - timedelta(days=1)
    groups = (
        UsageLedger.objects.filter(day__lte=last_finished_day, shard__gt=0)
        .values_list("day", "provider", "route", "key_name")
        .distinct()
    )
    folded = 0
    for day, provider, route, key_name in list(groups):
        with transaction.atomic():
            rows = list(
                UsageLedger.objects.select_for_update()
                .filter(day=day, provider=provider, route=route, key_name=key_name)
                .order_by("shard")
            )
            shards = [row for row in rows if row.shard > 0]
            if not shards:  # folded by a concurrent roll-up
                continue
            totals = {name: sum(getattr(row, name) for row in shards) for name in USAGE_SUM_FIELDS}
            UsageLedger.objects.filter(pk__in=[row.pk for row in shards]).delete()
            if rows[0].shard == 0:
                UsageLedger.objects.filter(pk=rows[0].pk).update(
                    **{name: F(name) + value for name, value in totals.items()}
                )
            else:
                UsageLedger.objects.create(
                    day=day, provider=provider, route=route, key_name=key_name, shard=0, **totals
                )
            folded += len(shards)
    return folded


def probe_leases_prune() -> int:
    """Delete the probe leases of half-open rounds that are over.

    Every breaker transition bumps the generation, and leases are only read (and
    reissued) within the current generation; a report on an older lease is
    ignored whether its row exists or not. So a lease behind its breaker's
    generation is dead, and only the current round's few rows are kept.
    """
    current = BreakerState.objects.filter(pk=OuterRef("provider_id")).values("generation")
    deleted, _ = ProbeLease.objects.filter(generation__lt=Subquery(current)).delete()
    return deleted


def call_counters_roll_up(*, now: datetime | None = None) -> RollupSummary:
    """Write the rows of every period that still has one-second buckets, and
    delete the buckets of periods that are over.

    Periods still open (or within the grace period) are re-computed from their
    buckets and overwritten: idempotent, so a missed run costs nothing. Buckets
    of periods that are over are read under a row lock, added to their period (a
    row that is already final only gains late buckets) and deleted in the same
    transaction, so each bucket is counted exactly once even if two beats run
    the roll-up at the same time.
    """
    now = now or get_clock().now()
    # Periods that start before this are over (plus the grace).
    final_before = period_of(now - FINAL_GRACE)
    with transaction.atomic():
        closed = CallBucket.objects.select_for_update().filter(bucket_start__lt=final_before)
        finished = _aggregate(closed.values_list("pk", *_ROW_FIELDS))
        for key, period in finished.items():
            _add_to_final_row(key, period)
        pks = [pk for period in finished.values() for pk in period.pks]
        pruned_count = 0
        for start in range(0, len(pks), _DELETE_BATCH):  # SQLite caps query parameters
            pruned_count += CallBucket.objects.filter(
                pk__in=pks[start : start + _DELETE_BATCH]
            ).delete()[0]
    open_periods = _aggregate(
        CallBucket.objects.filter(bucket_start__gte=final_before, bucket_start__lt=now).values_list(
            "pk", *_ROW_FIELDS
        )
    )
    for key, period in open_periods.items():
        _overwrite_open_row(key, period)
    summary = RollupSummary(
        hours=len(finished) + len(open_periods), final=len(finished), buckets_pruned=pruned_count
    )
    logger.info(
        "call_counters_rolled_up hours=%s final=%s buckets_pruned=%s",
        summary.hours, summary.final, summary.buckets_pruned,
    )  # fmt: skip
    return summary


_DELETE_BATCH = 500
_ROW_FIELDS = ("provider_id", "bucket_start", *SUM_FIELDS, *COUNT_FIELDS)


@dataclass
class _Period:
    counts: Counter
    stats: CallStats  # latency sums and histograms
    pks: list[int]

    def values(self) -> dict:
        return {
            **{name: self.counts[name] for name in COUNT_FIELDS},
            "latency_ms_sum": self.stats.latency_ms_sum,
            "total_ms_sum": self.stats.total_ms_sum,
            "latency_histogram": dict(self.stats.histogram),
            "total_histogram": dict(self.stats.total_histogram),
        }


def _aggregate(rows) -> dict[tuple[int, datetime], _Period]:
    periods: dict[tuple[int, datetime], _Period] = {}
    for pk, provider_id, bucket_start, *values in rows.iterator(chunk_size=2000):
        key = (provider_id, period_of(bucket_start))
        period = periods.setdefault(key, _Period(Counter(), CallStats(), []))
        columns = dict(zip(SUM_FIELDS + COUNT_FIELDS, values, strict=True))
        period.counts.update({name: columns[name] for name in COUNT_FIELDS})
        period.stats += CallStats.of_bucket(columns)
        period.pks.append(pk)
    return periods


def _add_to_final_row(key: tuple[int, datetime], period: _Period) -> None:
    provider_id, start = key
    row, created = CallRollup.objects.select_for_update().get_or_create(
        provider_id=provider_id, period_start=start
    )
    if created or not row.final:  # every bucket of the period is here: the whole period
        values = period.values()
    else:  # late buckets of a period already rolled up and pruned
        counts = Counter({name: getattr(row, name) for name in COUNT_FIELDS}) + period.counts
        values = _Period(counts, CallStats.of(row) + period.stats, []).values()
    for name, value in values.items():
        setattr(row, name, value)
    row.final = True
    row.save()


def _overwrite_open_row(key: tuple[int, datetime], period: _Period) -> None:
    provider_id, start = key
    values = period.values()
    rows = CallRollup.objects.filter(provider_id=provider_id, period_start=start, final=False)
    if rows.update(**values):
        return
    try:
        with transaction.atomic():
            CallRollup.objects.create(provider_id=provider_id, period_start=start, **values)
    except IntegrityError:  # another run created it first, or it became final meanwhile
        pass


def counters_flush() -> None:
    """Write this process's buffered call counters now."""
    counters.flush_pending()
