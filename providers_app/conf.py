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
    "MAX_INLINE_RETRY_AFTER_S": 1.0,  # longer rate-limit hints fail over instead of waiting
    "RETRY_AFTER_CAP_S": 120.0,  # hints are clamped to this
    "BACKOFF_BASE_S": 0.25,  # full-jitter exponential backoff between attempts
    "BACKOFF_MAX_S": 4.0,
    "RETRY_BUDGET_RATIO": 0.1,  # retries in the window <= max(MIN, RATIO * first attempts)
    "RETRY_BUDGET_MIN": 10,
    "FAILOVER_ON_CONTENT_FILTER": False,
    "STREAM_FIRST_TOKEN_S": 20.0,
    "STREAM_IDLE_S": 30.0,
    # Breaker (per-provider overrides live on Provider)
    "BREAKER_WINDOW_S": 60,
    "BREAKER_FAILURE_THRESHOLD": 5,  # consecutive failures
    "BREAKER_FAILURE_RATE": 50,  # percent, over the window
    "BREAKER_SLOW_CALL_RATE": 80,  # percent, over the window
    "BREAKER_SLOW_CALL_S": 30.0,
    "BREAKER_MINIMUM_CALLS": 10,
    "BREAKER_OPEN_BASE_S": 30.0,
    "BREAKER_OPEN_MAX_S": 300.0,
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
    "MAX_REQUEST_BYTES": 1024 * 1024,
    # Serving through a database outage: a client key the database accepted this
    # long ago (or less) is still let in while the database cannot answer.
    "CLIENT_KEY_GRACE_S": 120.0,
}


def get_setting(name: str) -> Any:
    """Return `settings.FALLBACK_<name>`, or the default when the project sets none."""
    from django.conf import settings

    if name not in DEFAULTS:
        raise KeyError(f"Unknown fallback setting {name!r}")
    return getattr(settings, f"FALLBACK_{name}", DEFAULTS[name])
