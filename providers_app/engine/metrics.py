"""Prometheus metrics of the failover layer.

Counters and histograms are kept per process. With PROMETHEUS_MULTIPROC_DIR set
(production under gunicorn), prometheus_client writes each process's values to
files in that folder and `/metrics` adds them up, so every worker's requests
count no matter which worker serves the scrape. The variable must be set before
the process starts (it is read when this module is imported);
`fallbackproject/gunicorn.conf.py` wipes the folder at start and marks exited
workers dead.

State that lives in the database (breaker state, the health-check streak,
whether a provider is enabled) is not a per-process value: it is read from the
database at scrape time by `DatabaseCollector`, so every worker reports the
same, current truth.
"""

import logging
import os
from collections.abc import Iterator

from django.db import DatabaseError
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from ..selectors.call_stats import LATENCY_BOUNDS_MS

logger = logging.getLogger(__name__)


REQUESTS = Counter(
    "fallback_requests_total",
    "Chat requests by final outcome, provider and route.",
    ["provider", "outcome", "route"],
)
# Answered requests by how they were answered (selectors.call_stats.ANSWERED_HOW).
ANSWERS = Counter(
    "fallback_answers_total",
    "Answered requests by provider, route and how: first_try, after_retries, fallback.",
    ["provider", "route", "how"],
)
FAILOVERS = Counter(
    "fallback_failovers_total",
    "Moves to the next provider.",
    ["from_provider", "to_provider", "reason"],
)
CONTINUATIONS = Counter(
    "fallback_continuations_total",
    "Committed streams whose answer another provider finished (mid-stream rescue).",
    ["from_provider", "to_provider", "reason"],
)
SKIPPED_STREAM_EVENTS = Counter(
    "fallback_stream_skipped_events_total",
    "Undecodable stream events skipped inside otherwise valid streams.",
    ["provider"],
)
INTERNAL_ERRORS = Counter(
    "fallback_internal_errors_total",
    "Exceptions from the failover layer's own code, by where they were caught.",
    ["where"],
)
SKIPS = Counter("fallback_skips_total", "Providers skipped without a call.", ["provider", "reason"])
RETRIES = Counter("fallback_retries_total", "Retries on the same provider.", ["provider"])
BUDGET_REFUSALS = Counter(
    "fallback_retry_budget_refusals_total", "Retries refused by the retry budget.", ["provider"]
)
TRANSITIONS = Counter(
    "fallback_breaker_transitions_total", "Breaker transitions.", ["provider", "to_state"]
)
HEALTH_CHECKS = Counter("fallback_health_checks_total", "Health checks.", ["provider", "ok"])
# Latency definitions: selectors.call_stats and docs/operations.md. The
# dashboard's two latency charts read the same two, in the same buckets.
# Usage and cost (engine/usage.py): labelled by the client key's name, never the key.
TOKENS = Counter(
    "fallback_tokens_total",
    "Tokens billed: as the vendor reported them (source=reported) or estimated.",
    ["provider", "route", "key", "type", "source", "attempt"],
)
COST = Counter(
    "fallback_cost_usd_total",
    "Spend in US dollars at the providers' configured prices.",
    ["provider", "route", "key", "attempt"],
)
FAILOVER_COST = Counter(
    "fallback_failover_cost_usd_total",
    "Extra spend on answers from a fallback pricier than the route's first provider.",
    ["provider", "route", "key"],
)
FAILOVER_SAVINGS = Counter(
    "fallback_failover_savings_usd_total",
    "Spend saved on answers from a fallback cheaper than the route's first provider.",
    ["provider", "route", "key"],
)
# Labelled, like every counter here: a label-less one would open its multiprocess
# file at import, before the serving process has made PROMETHEUS_MULTIPROC_DIR.
USAGE_DROPPED = Counter(
    "fallback_usage_dropped_rows_total",
    "Usage ledger rows dropped during a database outage.",
    ["reason"],
)
ATTEMPT_LATENCY = Histogram(
    "fallback_attempt_seconds",
    "Seconds from sending one upstream attempt to its first output (the whole answer "
    "when not streamed), or to its failure.",
    ["provider", "outcome"],
    buckets=tuple(bound / 1000 for bound in LATENCY_BOUNDS_MS),
)
ANSWER_SECONDS = Histogram(
    "fallback_answer_seconds",
    "Seconds from sending the answering attempt to the end of its answer (a stream's "
    "last chunk; the same as the first output when not streamed).",
    ["provider"],
    buckets=tuple(bound / 1000 for bound in LATENCY_BOUNDS_MS),
)
STORE_ERRORS = Counter(
    "fallback_store_errors_total", "Database errors absorbed by the failover layer.", ["operation"]
)


def store_error(operation: str) -> None:
    STORE_ERRORS.labels(operation=operation).inc()


class DatabaseCollector(Collector):
    """Gauges read from the database at scrape time (two queries per scrape).

    `fallback_breaker_state{provider,state}` is 1 for the breaker's current state
    and 0 for the others (the usual enum-as-gauge shape), the same in every
    process because the database is the one source of breaker state.
    """

    def describe(self) -> list[Metric]:
        # Registration must not touch the database (it happens at import).
        return list(self._families())

    def collect(self) -> Iterator[Metric]:
        families = self._families()
        try:
            self._fill(*families)
        except DatabaseError:
            logger.warning("metrics scrape could not read the database; breaker gauges omitted")
            store_error("metrics_scrape")
            return
        yield from families

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, ...]:
        return (
            GaugeMetricFamily(
                "fallback_breaker_state",
                "1 for the breaker's current state, 0 for the others (from the database).",
                labels=["provider", "state"],
            ),
            GaugeMetricFamily(
                "fallback_provider_enabled",
                "1 when the provider is enabled for routing.",
                labels=["provider"],
            ),
            GaugeMetricFamily(
                "fallback_health_consecutive_failures",
                "Failed health checks in a row (0 when the last check passed).",
                labels=["provider"],
            ),
            GaugeMetricFamily(
                "fallback_provider_success_ratio",
                "Answered calls out of attempts over the last 5 minutes, as /api/status "
                "reports it (absent when nothing was attempted).",
                labels=["provider"],
            ),
        )

    @staticmethod
    def _fill(
        state: GaugeMetricFamily,
        enabled: GaugeMetricFamily,
        streak: GaugeMetricFamily,
        success_ratio: GaugeMetricFamily,
    ) -> None:
        # Imported here: this module is imported before the app registry is ready.
        from ..models import BreakerState
        from ..selectors.providers import provider_status_list
        from .clock import get_clock

        for status in provider_status_list(now=get_clock().now()):
            for choice in BreakerState.State.values:
                state.add_metric([status.name, choice], 1.0 if choice == status.state else 0.0)
            enabled.add_metric([status.name], 1.0 if status.enabled else 0.0)
            streak.add_metric([status.name], float(status.health_failures))
            if status.recent.success_rate is not None:
                success_ratio.add_metric([status.name], status.recent.success_rate)


class _Chain(Collector):
    """Several collectors exposed as one (the process registry plus the database)."""

    def __init__(self, *collectors: Collector | CollectorRegistry):
        self._collectors = collectors

    def collect(self) -> Iterator[Metric]:
        for collector in self._collectors:
            yield from collector.collect()


# Kept under its historical name: the breaker-state gauge of /metrics.
BREAKER_STATE = DatabaseCollector()


def multiprocess_dir() -> str:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")


def scrape_registry() -> CollectorRegistry:
    """What `/metrics` exposes: every process's counters, plus the database gauges.

    In multiprocess mode the per-process files are merged by a fresh
    MultiProcessCollector (the global registry would only hold this process's
    own values); otherwise this process's registry is the whole story.
    """
    registry = CollectorRegistry(auto_describe=False)
    if multiprocess_dir():
        MultiProcessCollector(registry)
        registry.register(BREAKER_STATE)
    else:
        registry.register(_Chain(REGISTRY, BREAKER_STATE))
    return registry
