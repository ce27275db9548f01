"""Housekeeping: prune old history, roll call counters up into hourly rows for charts.

`CallBucket` holds one-second counters that the breaker window and the retry
budget read; they are worth keeping only for a few minutes. The roll-up turns
them into one `CallRollup` row per provider and hour (counts, and a latency
histogram for p50/p95), re-computing every hour that still has buckets, so it is
idempotent and a late run catches up. Once an hour is over (plus a grace period
for buffered counters still on their way) its row is marked final and its
buckets are deleted: buckets are pruned only after they were rolled up.

Latency. A bucket row holds the sum of latencies of the answered calls of one
second in one process shard, not each call. The histogram therefore counts each
row's calls at the row's mean latency. At LLM latencies (seconds per call) a
shard rarely answers more than one call per second, so this is the per-call
distribution; under heavy load it compresses the tail (see docs/operations.md).
"""

import logging
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import IntegrityError, transaction

from ..conf import get_setting
from ..engine import counters
from ..engine.clock import get_clock
from ..engine.metrics import LATENCY_BOUNDS_MS
from ..models import CallBucket, CallRollup, FailoverEvent, HealthCheckResult

logger = logging.getLogger("providers_app.housekeeping")

# Calls above the last latency bound go to "inf".
INF = "inf"
# Buffered counters reach the database within FALLBACK_COUNTER_FLUSH_S (2 s); an
# hour is final this long after it ends, so no late flush is lost to pruning.
FINAL_GRACE = timedelta(minutes=5)
# Hourly rows back the 7-day charts: keep them at least that long.
MIN_ROLLUP_RETENTION_DAYS = 7

COUNT_FIELDS = tuple(name for name in counters.FIELDS if name != "latency_ms_sum")


@dataclass(frozen=True)
class PruneSummary:
    events: int
    health_results: int
    rollups: int


@dataclass(frozen=True)
class RollupSummary:
    hours: int  # (provider, hour) rows written
    final: int  # of which final
    buckets_pruned: int


def hour_of(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def latency_bucket(latency_ms: float) -> str:
    """The histogram key a latency falls in: the first upper bound it does not exceed."""
    for bound in LATENCY_BOUNDS_MS:
        if latency_ms <= bound:
            return str(bound)
    return INF


def history_prune(*, now: datetime | None = None) -> PruneSummary:
    """Delete events and health results older than FALLBACK_EVENT_RETENTION_DAYS."""
    now = now or get_clock().now()
    days = get_setting("EVENT_RETENTION_DAYS")
    cutoff = now - timedelta(days=days)
    rollup_cutoff = now - timedelta(days=max(days, MIN_ROLLUP_RETENTION_DAYS))
    events, _ = FailoverEvent.objects.filter(created_at__lt=cutoff).delete()
    results, _ = HealthCheckResult.objects.filter(checked_at__lt=cutoff).delete()
    rollups, _ = CallRollup.objects.filter(hour__lt=hour_of(rollup_cutoff)).delete()
    summary = PruneSummary(events=events, health_results=results, rollups=rollups)
    logger.info(
        "history_pruned events=%s health_results=%s rollups=%s retention_days=%s",
        events, results, rollups, days,
    )  # fmt: skip
    return summary


def call_counters_roll_up(*, now: datetime | None = None) -> RollupSummary:
    """Write the hourly rows of every hour that still has one-second buckets, and
    delete the buckets of hours that are over.

    Hours still open (or within the grace period) are re-computed from their
    buckets and overwritten: idempotent, so a missed run costs nothing. Buckets
    of hours that are over are read under a row lock, added to their hour (a row
    that is already final only gains late buckets) and deleted in the same
    transaction, so each bucket is counted exactly once even if two beats run
    the roll-up at the same time.
    """
    now = now or get_clock().now()
    final_before = hour_of(now - FINAL_GRACE)  # hours that start before this are over
    with transaction.atomic():
        closed = CallBucket.objects.select_for_update().filter(bucket_start__lt=final_before)
        finished = _aggregate(closed.values_list("pk", *_ROW_FIELDS))
        for key, hourly in finished.items():
            _add_to_final_row(key, hourly)
        pks = [pk for hourly in finished.values() for pk in hourly.pks]
        pruned_count = 0
        for start in range(0, len(pks), _DELETE_BATCH):  # SQLite caps query parameters
            pruned_count += CallBucket.objects.filter(
                pk__in=pks[start : start + _DELETE_BATCH]
            ).delete()[0]
    open_hours = _aggregate(
        CallBucket.objects.filter(bucket_start__gte=final_before, bucket_start__lt=now).values_list(
            "pk", *_ROW_FIELDS
        )
    )
    for key, hourly in open_hours.items():
        _overwrite_open_row(key, hourly)
    summary = RollupSummary(
        hours=len(finished) + len(open_hours), final=len(finished), buckets_pruned=pruned_count
    )
    logger.info(
        "call_counters_rolled_up hours=%s final=%s buckets_pruned=%s",
        summary.hours, summary.final, summary.buckets_pruned,
    )  # fmt: skip
    return summary


_DELETE_BATCH = 500
_ROW_FIELDS = ("provider_id", "bucket_start", "latency_ms_sum", *COUNT_FIELDS)


@dataclass
class _Hourly:
    counts: Counter
    latency_ms_sum: float
    histogram: Counter
    pks: list[int]


def _aggregate(rows) -> dict[tuple[int, datetime], _Hourly]:
    hours: dict[tuple[int, datetime], _Hourly] = {}
    for pk, provider_id, bucket_start, latency_ms_sum, *values in rows.iterator(chunk_size=2000):
        key = (provider_id, hour_of(bucket_start))
        hourly = hours.setdefault(key, _Hourly(Counter(), 0.0, Counter(), []))
        counts = dict(zip(COUNT_FIELDS, values, strict=True))
        hourly.counts.update(counts)
        hourly.latency_ms_sum += latency_ms_sum
        hourly.pks.append(pk)
        answered = counts["successes"] + counts["slow_calls"]
        if answered:
            hourly.histogram[latency_bucket(latency_ms_sum / answered)] += answered
    return hours


def _add_to_final_row(key: tuple[int, datetime], hourly: _Hourly) -> None:
    provider_id, hour = key
    row, created = CallRollup.objects.select_for_update().get_or_create(
        provider_id=provider_id, hour=hour
    )
    if created or not row.final:  # every bucket of the hour is here: this is the whole hour
        counts, latency, histogram = hourly.counts, hourly.latency_ms_sum, hourly.histogram
    else:  # late buckets of an hour already rolled up and pruned
        counts = Counter({name: getattr(row, name) for name in COUNT_FIELDS}) + hourly.counts
        latency = row.latency_ms_sum + hourly.latency_ms_sum
        histogram = Counter(row.latency_histogram) + hourly.histogram
    for name in COUNT_FIELDS:
        setattr(row, name, counts[name])
    row.latency_ms_sum = latency
    row.latency_histogram = dict(histogram)
    row.final = True
    row.save()


def _overwrite_open_row(key: tuple[int, datetime], hourly: _Hourly) -> None:
    provider_id, hour = key
    values = {
        **{name: hourly.counts[name] for name in COUNT_FIELDS},
        "latency_ms_sum": hourly.latency_ms_sum,
        "latency_histogram": dict(hourly.histogram),
    }
    if CallRollup.objects.filter(provider_id=provider_id, hour=hour, final=False).update(**values):
        return
    try:
        with transaction.atomic():
            CallRollup.objects.create(provider_id=provider_id, hour=hour, **values)
    except IntegrityError:  # another run created it first, or it became final meanwhile
        pass


def counters_flush() -> None:
    """Write this process's buffered call counters now."""
    counters.flush_pending()
