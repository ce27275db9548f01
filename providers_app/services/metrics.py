"""Prometheus metrics of the failover layer.

With PROMETHEUS_MULTIPROC_DIR set (production under gunicorn), prometheus_client
keeps each worker's values in files there and `/metrics` adds them up.
"""

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter(
    "fallback_requests_total",
    "Chat requests by final outcome and provider.",
    ["provider", "outcome"],
)
FAILOVERS = Counter(
    "fallback_failovers_total",
    "Moves to the next provider.",
    ["from_provider", "to_provider", "reason"],
)
SKIPS = Counter("fallback_skips_total", "Providers skipped without a call.", ["provider", "reason"])
RETRIES = Counter("fallback_retries_total", "Retries on the same provider.", ["provider"])
BUDGET_REFUSALS = Counter(
    "fallback_retry_budget_refusals_total", "Retries refused by the retry budget.", ["provider"]
)
BREAKER_STATE = Gauge(
    "fallback_breaker_state",
    "1 for the breaker's current state (as last seen by this process).",
    ["provider", "state"],
    multiprocess_mode="livemax",
)
TRANSITIONS = Counter(
    "fallback_breaker_transitions_total", "Breaker transitions.", ["provider", "to_state"]
)
HEALTH_CHECKS = Counter("fallback_health_checks_total", "Health checks.", ["provider", "ok"])
ATTEMPT_LATENCY = Histogram(
    "fallback_attempt_seconds",
    "Latency of one upstream attempt.",
    ["provider", "outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 45),
)
STORE_ERRORS = Counter(
    "fallback_store_errors_total", "Database errors absorbed by the failover layer.", ["operation"]
)


def store_error(operation: str) -> None:
    STORE_ERRORS.labels(operation=operation).inc()
