"""Call statistics, defined once: what answered, attempts and success rate mean.

Every surface that reports a provider's calls (`/api/status`, the dashboard,
`/metrics`, health checks) builds a `CallStats` from `CallCounters` columns
(`CallBucket` or `CallRollup` rows, or their sums) and reads these properties,
so the arithmetic cannot drift between them:

- answered = successes + slow calls (a slow call still answered);
- attempts = answered + failures + rate-limited calls: every call that reached
  the provider (skips made no call and are not counted);
- success rate = answered / attempts, a fraction between 0 and 1 (None with no
  attempts: unknown, not 0). Presentation may show it as a percentage.

Latency has two definitions, both over answered calls, both named on every
surface that shows them (docs/operations.md, "Latency: two definitions"):

- time to first output (`latency_ms_sum`, `latency_histogram`): from sending
  the attempt to the first piece of model output; for a call that is not
  streamed that is the whole answer. The breaker's slow-call threshold judges
  it, and `/metrics` observes it as `fallback_attempt_seconds{outcome="success"}`;
- total time (`total_ms_sum`, `total_histogram`): from sending the attempt to
  the end of the answer (a stream's last chunk); equal to the first for calls
  that are not streamed. `/metrics`: `fallback_answer_seconds`.

The breaker's own window (`engine.counters.window_counts`) deliberately leaves
rate-limited calls out: a 429 says "busy", and must not trip the breaker.

Requests, as the callers saw them (`RequestStats`, the dashboard's first panel;
`DEFINITIONS` holds the wording the page shows):

- answered at the first try: the first provider the request reached answered
  its first attempt;
- answered after retries: that provider answered, after retrying itself;
- answered by a fallback: an earlier provider of the route failed or was
  skipped (open, cooling down), or a cut stream was finished by another;
- failed: no provider answered (`all_failed` events, their count summed), or a
  stream was cut after output and nobody could finish it (`interrupted`);
- requests = answered + failed, by construction. A request refused before any
  provider (bad input, an unknown route, a prompt too long everywhere) is a
  client error, not a request here.

/metrics counts the same: `fallback_requests_total{outcome}` (success,
all_failed, interrupted) and `fallback_answers_total{how}`.

Each provider's view: attempts and answered (above), failures (attempts that
failed, rate limits apart), its failed attempts by reason (every failed attempt,
rate limits and the caller's faults included, by its category: `FailureBucket`
rows, /metrics' `fallback_attempt_seconds_count{outcome=<reason>}`;
`failures_by_reason`), the requests it gave up on by reason (its
`failover` events), `skipped` (requests that passed it by while its breaker was
open, forced open, half-open with every probe slot taken, or cooling down:
`fallback_skips_total` for those reasons), and its share of the answers
(requests it answered out of all answered requests).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import QuerySet, Sum

# Upper bounds (ms) of the latency histogram that `CallRollup.latency_histogram`
# holds; calls above the last go to "inf". The attempt-latency histogram of
# /metrics is built from the same tuple (in seconds), so the two always agree.
LATENCY_BOUNDS_MS: tuple[int, ...] = (50, 100, 250, 500, 1000, 2000, 5000, 10000, 20000, 45000)
INF = "inf"
# Decimal places of a success rate: enough for 1 call in 10,000, and equal on every surface.
SUCCESS_RATE_PLACES = 4


# The span of one `CallRollup` row: short enough for a one-hour chart to draw a
# line, long enough that seven days stay a few thousand rows per provider.
ROLLUP_PERIOD = timedelta(minutes=5)
# One-second buckets outlive their period by this much before the roll-up
# replaces them, so a span finer than ROLLUP_PERIOD can be drawn this far back:
# the one-hour range's 30 s bins (a 30 s outage shows in the last hour too).
FINE_HISTORY = timedelta(hours=1)


def hour_of(moment: datetime) -> datetime:
    """The start of the (UTC) hour a moment falls in."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def floor_to(moment: datetime, span: timedelta) -> datetime:
    """The start of the span (a divisor of a day, counted from midnight UTC) a moment falls in."""
    moment = moment.astimezone(UTC)
    midnight = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight + ((moment - midnight) // span) * span


def period_of(moment: datetime) -> datetime:
    """The start of the rollup period a moment falls in: the key of `CallRollup` rows."""
    return floor_to(moment, ROLLUP_PERIOD)


def latency_bucket(latency_ms: float) -> str:
    """The histogram key a latency falls in: the first upper bound it does not exceed."""
    for bound in LATENCY_BOUNDS_MS:
        if latency_ms <= bound:
            return str(bound)
    return INF


def histogram_quantile(q: float, histogram: Mapping[str, float]) -> float | None:
    """The q-quantile (0..1) of a latency histogram in ms, interpolated linearly
    within its bucket (as Prometheus' histogram_quantile does); calls above the
    last bound report that bound."""
    total = sum(histogram.values())
    if total <= 0:
        return None
    rank = q * total
    seen = 0.0
    lower = 0.0
    for bound in (*LATENCY_BOUNDS_MS, INF):
        count = histogram.get(str(bound), 0)
        if count and seen + count >= rank:
            if bound == INF:
                return float(LATENCY_BOUNDS_MS[-1])
            return lower + (float(bound) - lower) * (rank - seen) / count
        seen += count
        if bound != INF:
            lower = float(bound)
    return float(LATENCY_BOUNDS_MS[-1])


# The CallCounters columns a CallStats sums (the histograms are merged, not summed).
_SUMMED = (
    "successes",
    "slow_calls",
    "failures",
    "rate_limited",
    "retries",
    "not_permitted",
    "answered_first_try",
    "answered_after_retries",
    "answered_by_fallback",
    "interrupted",
    "latency_ms_sum",
    "total_ms_sum",
)

# How an answered request was answered: `answered_<how>` columns, the `how` label.
ANSWERED_HOW = ("first_try", "after_retries", "by_fallback")
# Skip reasons counted as `skipped` (`not_permitted` columns): the breaker said no.
BREAKER_SKIP_REASONS = ("open", "forced_open", "half_open_busy", "cooldown")


def answered_how(*, attempts: int, passed_by: bool) -> str:
    """How a request was answered: `passed_by` when an earlier provider failed or
    was skipped (or a cut stream was finished elsewhere); else by the attempts."""
    if passed_by:
        return "by_fallback"
    return "first_try" if attempts <= 1 else "after_retries"


# The definitions the dashboard shows, beside its figures.
DEFINITIONS: dict[str, str] = {
    "requests": "Requests = answered + failed. Client errors (bad input, unknown route) "
    "are not requests here.",
    "answered_first_try": "The first provider reached answered its first attempt.",
    "answered_after_retries": "The first provider reached answered after retrying.",
    "answered_by_fallback": "An earlier provider failed or was skipped (open, cooling down), "
    "or a cut stream was finished by another provider.",
    "failed": "No provider answered, or a stream was cut after output and nobody finished it.",
    "attempts": "Calls that reached the provider: answered + failures + rate limited.",
    "failures": "Attempts that failed (rate limits apart).",
    "failures_by_reason": "Every failed attempt, by its reason: rate limits and "
    "the caller's faults included.",
    "gave_up": "Requests the provider did not answer and passed on (or failed), by reason.",
    "skipped": "Requests that passed the provider by without a call: breaker open, forced "
    "open, half-open with every probe slot taken, or cooling down after a rate limit.",
    "share": "Requests the provider answered, out of all answered requests.",
}


def _merged(first: Mapping[str, float], second: Mapping[str, float]) -> dict[str, float]:
    return dict(Counter(first) + Counter(second))


@dataclass(frozen=True)
class CallStats:
    """One provider's calls over some span: counts, latency sum and histogram."""

    successes: int = 0
    slow_calls: int = 0
    failures: int = 0
    rate_limited: int = 0
    retries: int = 0
    latency_ms_sum: float = 0.0
    total_ms_sum: float = 0.0
    # time to first output, and total time: {upper bound in ms or "inf": answered calls}
    histogram: Mapping[str, float] = field(default_factory=dict, compare=False)
    total_histogram: Mapping[str, float] = field(default_factory=dict, compare=False)

    @classmethod
    def of(cls, row: Any) -> CallStats:
        """From a `CallRollup` row, or a mapping of its column names (sums may be None)."""

        def get(name: str) -> Any:
            return row.get(name) if isinstance(row, Mapping) else getattr(row, name, None)

        values = {name: get(name) or 0 for name in _SUMMED}
        return cls(
            **values,
            histogram=dict(get("latency_histogram") or {}),
            total_histogram=dict(get("total_histogram") or {}),
        )

    @classmethod
    def of_bucket(cls, row: Any) -> CallStats:
        """From one `CallBucket` row (or a mapping of its columns), histograms included.

        A bucket holds latency sums, not each call: its answered calls are
        placed at the row's mean (exact while a process answers at most one
        call of a provider per second, see docs/operations.md). The roll-up and
        the dashboard's not-yet-rolled-up minutes both build histograms here.
        """
        stats = cls.of(row)
        answered = stats.answered
        if not answered:
            return stats
        return cls(
            **{name: getattr(stats, name) for name in _SUMMED},
            histogram={latency_bucket(stats.latency_ms_sum / answered): answered},
            total_histogram={latency_bucket(stats.total_ms_sum / answered): answered},
        )

    def __add__(self, other: CallStats) -> CallStats:
        summed = {name: getattr(self, name) + getattr(other, name) for name in _SUMMED}
        return CallStats(
            **summed,
            histogram=_merged(self.histogram, other.histogram),
            total_histogram=_merged(self.total_histogram, other.total_histogram),
        )

    not_permitted: int = 0
    answered_first_try: int = 0
    answered_after_retries: int = 0
    answered_by_fallback: int = 0
    interrupted: int = 0

    @property
    def answered(self) -> int:
        return self.successes + self.slow_calls

    @property
    def skipped(self) -> int:
        """Requests that passed this provider by: its breaker said no (BREAKER_SKIP_REASONS)."""
        return self.not_permitted

    @property
    def requests_answered(self) -> int:
        """Requests this provider answered (one answered call each)."""
        return self.answered_first_try + self.answered_after_retries + self.answered_by_fallback

    @property
    def attempts(self) -> int:
        return self.answered + self.failures + self.rate_limited

    @property
    def success_rate(self) -> float | None:
        """Answered out of attempts, as a fraction; None when nothing was attempted."""
        if not self.attempts:
            return None
        return round(self.answered / self.attempts, SUCCESS_RATE_PLACES)

    @property
    def mean_latency_ms(self) -> float | None:
        return round(self.latency_ms_sum / self.answered, 1) if self.answered else None

    @property
    def p50_ms(self) -> float | None:
        return histogram_quantile(0.5, self.histogram)

    @property
    def p95_ms(self) -> float | None:
        return histogram_quantile(0.95, self.histogram)

    @property
    def total_p50_ms(self) -> float | None:
        return histogram_quantile(0.5, self.total_histogram)

    @property
    def total_p95_ms(self) -> float | None:
        return histogram_quantile(0.95, self.total_histogram)


@dataclass(frozen=True)
class RequestStats:
    """Requests as the callers saw them over a span (the module's docstring defines each)."""

    answered_first_try: int = 0
    answered_after_retries: int = 0
    answered_by_fallback: int = 0
    all_failed: int = 0  # no provider answered
    interrupted: int = 0  # cut after output, nobody finished it

    @classmethod
    def of(cls, calls: CallStats, *, all_failed: int) -> RequestStats:
        """From every provider's calls summed, and the `all_failed` events' count."""
        return cls(
            calls.answered_first_try,
            calls.answered_after_retries,
            calls.answered_by_fallback,
            all_failed,
            calls.interrupted,
        )

    @property
    def answered(self) -> int:
        return self.answered_first_try + self.answered_after_retries + self.answered_by_fallback

    @property
    def failed(self) -> int:
        return self.all_failed + self.interrupted

    @property
    def requests(self) -> int:
        return self.answered + self.failed

    def share_of_answers(self, calls: CallStats) -> float | None:
        """A provider's share of the answered requests, a fraction; None with none answered."""
        if not self.answered:
            return None
        return round(calls.requests_answered / self.answered, SUCCESS_RATE_PLACES)


def call_stats_by_provider(rows: QuerySet) -> dict[int, CallStats]:
    """{provider id: CallStats} summed over `CallCounters` rows (one query)."""
    sums = rows.values("provider_id").annotate(**{name: Sum(name) for name in _SUMMED}).order_by()
    return {row["provider_id"]: CallStats.of(row) for row in sums}


def call_stats_total(rows: QuerySet) -> CallStats:
    """CallStats summed over `CallCounters` rows (one query)."""
    return CallStats.of(rows.aggregate(**{name: Sum(name) for name in _SUMMED}))


def call_stats_by_span(
    *, start: datetime, end: datetime, span: timedelta
) -> dict[tuple[int, datetime], CallStats]:
    """{(provider id, span start): CallStats} of every call from `start` to `end`,
    final rollups and live buckets merged: the one place charts read traffic.

    The roll-up deletes a period's buckets in the transaction that makes its row
    final, so every call is in exactly one of the two: a final `CallRollup` row,
    or a `CallBucket` row not rolled up for good yet (the current minutes, which
    are then as fresh as the event log). Rows that are not final only repeat
    buckets that still exist and are left out. `span` is a multiple of
    ROLLUP_PERIOD, so a period never straddles two spans, or (the live range)
    finer over at most FINE_HISTORY, which only buckets cover.
    """
    # Imported here: engine.metrics imports this module before the app registry is ready.
    from ..models import CallBucket, CallRollup

    # Added up in place (a week of rows per provider: no CallStats per addition).
    sums: dict[tuple[int, datetime], Counter] = defaultdict(Counter)
    first: dict[tuple[int, datetime], Counter] = defaultdict(Counter)
    total: dict[tuple[int, datetime], Counter] = defaultdict(Counter)

    def add(provider_id: int, moment: datetime, stats: CallStats) -> None:
        key = (provider_id, floor_to(moment, span))
        sums[key].update({name: getattr(stats, name) for name in _SUMMED})
        first[key].update(stats.histogram)
        total[key].update(stats.total_histogram)

    final = CallRollup.objects.filter(
        final=True, period_start__gte=period_of(start), period_start__lte=end
    ).values("provider_id", "period_start", *_SUMMED, "latency_histogram", "total_histogram")
    for row in final.iterator(chunk_size=2000):
        add(row["provider_id"], row["period_start"], CallStats.of(row))
    live = CallBucket.objects.filter(bucket_start__gte=start, bucket_start__lte=end).values(
        "provider_id", "bucket_start", *_SUMMED
    )
    for row in live.iterator(chunk_size=2000):
        add(row["provider_id"], row["bucket_start"], CallStats.of_bucket(row))
    return {
        key: CallStats(
            **{name: counted[name] for name in _SUMMED},
            histogram=dict(first[key]),
            total_histogram=dict(total[key]),
        )
        for key, counted in sums.items()
    }


def failures_by_reason(*, start: datetime, end: datetime) -> dict[int, Counter]:
    """{provider id: Counter(reason -> failed attempts)} from `start` to `end`
    (one-second `FailureBucket` rows; the module's docstring defines them)."""
    from ..models import FailureBucket

    rows = (
        FailureBucket.objects.filter(bucket_start__gte=start, bucket_start__lte=end)
        .values("provider_id", "reason")
        .annotate(total=Sum("failures"))
        .order_by()
    )
    result: dict[int, Counter] = defaultdict(Counter)
    for row in rows:
        result[row["provider_id"]][row["reason"]] += row["total"]
    return result
