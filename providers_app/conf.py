"""The app's settings: `FALLBACK_<NAME>` in Django settings, else the default here.

Read at call time with `get_setting("DEADLINE_S")`, never at import, so tests and
`override_settings` see the value in force. The settings module reads every name
below from the environment too (see `fallbackproject/settings/base.py`).
"""

from typing import Any

DEFAULTS: dict[str, Any] = {
    # Per request
    "DEADLINE_S": 45.0,  # below gunicorn's 60 s worker timeout
    "MIN_ATTEMPT_S": 2.0,  # no attempt starts with less time than this left
    # Longer wait hints (any status) fail over at once and cool the provider down;
    # shorter ones are waited out on the preferred provider (docs/engine.md).
    "MAX_INLINE_RETRY_AFTER_S": 5.0,
    # While other providers wait behind one, this share of the time left is kept
    # for them: a first provider never takes the whole deadline.
    "DEADLINE_RESERVE_SHARE": 0.25,
    "RETRY_AFTER_CAP_S": 120.0,  # hints are clamped to this
    "BACKOFF_BASE_S": 0.25,  # full-jitter exponential backoff between attempts
    "BACKOFF_MAX_S": 4.0,
    "RETRY_BUDGET_RATIO": 0.1,  # retries in the window <= max(MIN, RATIO * first attempts)
    "RETRY_BUDGET_MIN": 10,
    "FAILOVER_ON_CONTENT_FILTER": False,
    "STREAM_FIRST_TOKEN_S": 10.0,  # a slow-to-start provider hands over early
    # Well under 30 s: a stalled stream is continued on the next provider soon
    # (docs/engine.md, "Mid-stream rescue").
    "STREAM_IDLE_S": 10.0,
    # Once output has started a stream is limited by silence (STREAM_IDLE_S) and
    # by this generous maximum, never by the attempt timeout; reaching it is not
    # the provider's failure.
    "STREAM_MAX_S": 600.0,
    # What the client controls never counts against a provider (docs/engine.md,
    # "The client's misfits"): an answer missing its response_format, or a
    # non-streamed request asking more output than a provider produces in time,
    # fails over at most this many times, then is the client's 422.
    "MISFIT_FAILOVERS": 1,
    # A healthy provider's output speed: a non-streamed request whose max_tokens
    # takes longer than the attempt timeout at this speed, and times out, is the
    # client's misfit (output_too_slow), not the provider's failure.
    "EXPECTED_TOKENS_PER_S": 100.0,
    # Bounded work per request (docs/engine.md, "Bounded work per request").
    "SCHEMA_MAX_BYTES": 64 * 1024,  # a response_format json_schema, serialised
    "SCHEMA_MAX_DEPTH": 64,  # its nesting (objects and arrays)
    "STREAM_MAX_EVENT_BYTES": 1024 * 1024,  # one upstream stream event's data
    # What one streamed answer may hold in memory (held back, or kept for rescue).
    "STREAM_MAX_TEXT_BYTES": 8 * 1024 * 1024,
    # Breaker (per-provider overrides live on Provider)
    "BREAKER_WINDOW_S": 60,
    "BREAKER_FAILURE_THRESHOLD": 5,  # consecutive failures
    "BREAKER_FAILURE_RATE": 50,  # percent, over the window
    "BREAKER_SLOW_CALL_RATE": 80,  # percent, over the window
    "BREAKER_SLOW_CALL_S": 30.0,
    "BREAKER_MINIMUM_CALLS": 10,
    # OPEN lasts base x 2^(cycles-1), capped at MAX, x U(0.8, 1.2): at most 24 s,
    # so traffic returns within 30 s of a recovery even with no health worker.
    "BREAKER_OPEN_BASE_S": 10.0,
    "BREAKER_OPEN_MAX_S": 20.0,
    "BREAKER_OPEN_LONG_S": 300.0,  # auth, permission, not found, quota: open this long at once
    "BREAKER_HALF_OPEN_PROBES": 1,
    "BREAKER_LEASE_EXTRA_S": 5.0,  # a probe lease lasts the attempt timeout plus this
    "COUNTER_FLUSH_S": 2.0,  # buffered success counters reach the database this often
    "ALL_FAILED_COALESCE_S": 10.0,
    # Health checks
    "HEALTH_DISPATCH_S": 10.0,  # how often beat looks for providers due a check
    "HEALTH_INTERVAL_CLOSED_S": 30.0,
    "HEALTH_INTERVAL_OPEN_S": 10.0,
    "HEALTH_TIMEOUT_S": 5.0,
    "HEALTH_FAILURE_THRESHOLD": 3,
    # Housekeeping and API
    "EVENT_RETENTION_DAYS": 30,
    # Request traces (engine/tracing.py): the share of requests answered at the
    # first try that are kept (0..1; every other request is always kept), and
    # how long traces are kept.
    "TRACE_SAMPLE_RATE": 0.1,
    "TRACE_RETENTION_DAYS": 7,
    # Alerts (services/alerts.py): a failover rate above this percentage of the
    # requests of the last ALERT_WINDOW_S (with at least ALERT_MIN_REQUESTS of
    # them) opens an incident; the window also ends a route-down incident.
    "ALERT_FAILOVER_RATE": 20.0,
    "ALERT_WINDOW_S": 300.0,
    "ALERT_MIN_REQUESTS": 20,
    "ALERT_TIMEOUT_S": 5.0,  # one webhook POST
    # Usage ledger (engine/usage.py): days of per-day rows kept, and how many
    # rows a process buffers through a database outage before dropping (counted).
    "USAGE_RETENTION_DAYS": 400,
    "USAGE_BUFFER_MAX_ROWS": 10000,
    # Budgets (engine/budgets.py): the answer tokens reserved for a request that
    # sets no max_tokens, and how long a process keeps the limits it read.
    "BUDGET_OUTPUT_RESERVE": 1000,
    "BUDGET_CACHE_S": 5.0,
    "MAX_REQUEST_BYTES": 1024 * 1024,
    # Outbound policy (providers_app/outbound.py): which environment variables a
    # provider may send as its key, and to which hosts. The built-in deny list
    # (server secrets, connection strings, cloud credentials) always wins.
    "KEY_ENV_ALLOW": ["*_API_KEY", "*_KEY", "*_TOKEN"],
    "KEY_ENV_ALLOW_NAMES": [],  # exact names allowed besides the patterns
    "KEY_ENV_DENY": [],  # patterns refused on top of the built-in deny list
    "UPSTREAM_HOSTS": [],  # host patterns base URLs must match; empty: any host
    # Key variable -> hosts its value may reach ("VAR=host|*.host"); the vendors'
    # own variables are bound to their hosts already; any other is sent nowhere.
    "KEY_HOSTS": [],
    # Bearer token /metrics asks for; empty: open (restrict it at the proxy).
    "METRICS_TOKEN": "",
    # Serving through a database outage: a client key the database accepted this
    # long ago (or less) is still let in while the database cannot answer.
    "CLIENT_KEY_GRACE_S": 120.0,
    # Per-key fairness (providers_app/limits): defaults for every client key, each
    # overridable on the key. Counted across processes (database, or Redis below).
    # Concurrency stays well below the server threads (2 x 576 chat slots): one key never
    # holds every thread.
    "KEY_CONCURRENT_REQUESTS": 16,
    "KEY_REQUESTS_PER_MINUTE": 600,
    # A concurrency slot is a lease this long, renewed while a stream runs, so a
    # slot held by a process that died frees itself.
    "LIMIT_LEASE_S": 60.0,
    # redis://host:6379/N to count limits in Redis (one round trip); empty: the database.
    "LIMITS_REDIS_URL": "",
}

# Values that would break the layer or delete data: refused when settings load.
POSITIVE = (
    "DEADLINE_S",
    "MIN_ATTEMPT_S",
    "RETRY_AFTER_CAP_S",
    "BACKOFF_MAX_S",
    "STREAM_FIRST_TOKEN_S",
    "STREAM_IDLE_S",
    "BREAKER_WINDOW_S",
    "BREAKER_FAILURE_THRESHOLD",
    "BREAKER_SLOW_CALL_S",
    "BREAKER_MINIMUM_CALLS",
    "BREAKER_OPEN_BASE_S",
    "BREAKER_OPEN_MAX_S",
    "BREAKER_HALF_OPEN_PROBES",
    "COUNTER_FLUSH_S",
    "ALL_FAILED_COALESCE_S",
    "HEALTH_DISPATCH_S",
    "HEALTH_INTERVAL_CLOSED_S",
    "HEALTH_INTERVAL_OPEN_S",
    "HEALTH_TIMEOUT_S",
    "HEALTH_FAILURE_THRESHOLD",
    "MAX_REQUEST_BYTES",
    "EXPECTED_TOKENS_PER_S",
    "SCHEMA_MAX_BYTES",
    "SCHEMA_MAX_DEPTH",
    "STREAM_MAX_EVENT_BYTES",
    "STREAM_MAX_TEXT_BYTES",
    "ALERT_WINDOW_S",
    "ALERT_TIMEOUT_S",
    "KEY_CONCURRENT_REQUESTS",
    "KEY_REQUESTS_PER_MINUTE",
    "LIMIT_LEASE_S",
    "USAGE_RETENTION_DAYS",
    "USAGE_BUFFER_MAX_ROWS",
    "BUDGET_OUTPUT_RESERVE",
)
NOT_NEGATIVE = (
    "MISFIT_FAILOVERS",
    "MAX_INLINE_RETRY_AFTER_S",
    "BACKOFF_BASE_S",
    "RETRY_BUDGET_RATIO",
    "RETRY_BUDGET_MIN",
    "BREAKER_LEASE_EXTRA_S",
    "ALERT_MIN_REQUESTS",
    "BUDGET_CACHE_S",
)
PERCENTAGES = ("BREAKER_FAILURE_RATE", "BREAKER_SLOW_CALL_RATE", "ALERT_FAILOVER_RATE")


def settings_problems(values: dict[str, Any]) -> list[str]:
    """What is wrong with these FALLBACK_ values (names without the prefix)."""
    problems = [f"FALLBACK_{n} must be above 0." for n in POSITIVE if not values[n] > 0]
    problems += [f"FALLBACK_{n} must not be negative." for n in NOT_NEGATIVE if values[n] < 0]
    problems += [
        f"FALLBACK_{n} must be between 1 and 100 (percent)."
        for n in PERCENTAGES
        if not 1 <= values[n] <= 100
    ]
    if values["EVENT_RETENTION_DAYS"] < 1:
        problems.append(
            "FALLBACK_EVENT_RETENTION_DAYS must be at least 1: 0 would delete all history."
        )
    if not 0 <= values["TRACE_SAMPLE_RATE"] <= 1:
        problems.append("FALLBACK_TRACE_SAMPLE_RATE must be between 0 and 1.")
    if values["TRACE_RETENTION_DAYS"] < 1:
        problems.append("FALLBACK_TRACE_RETENTION_DAYS must be at least 1.")
    if values["BREAKER_OPEN_BASE_S"] > values["BREAKER_OPEN_MAX_S"]:
        problems.append("FALLBACK_BREAKER_OPEN_BASE_S must not exceed FALLBACK_BREAKER_OPEN_MAX_S.")
    if values["MIN_ATTEMPT_S"] > values["DEADLINE_S"]:
        problems.append("FALLBACK_MIN_ATTEMPT_S must not exceed FALLBACK_DEADLINE_S.")
    return problems


def settings_validate(values: dict[str, Any]) -> None:
    """Refuse to start with invalid FALLBACK_ settings; the message lists each problem."""
    problems = settings_problems(values)
    if problems:
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured("Invalid settings: " + " ".join(problems))


def get_setting(name: str) -> Any:
    """Return `settings.FALLBACK_<name>`, or the default when the project sets none."""
    from django.conf import settings

    if name not in DEFAULTS:
        raise KeyError(f"Unknown fallback setting {name!r}")
    return getattr(settings, f"FALLBACK_{name}", DEFAULTS[name])
