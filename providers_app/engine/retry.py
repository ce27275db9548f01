"""Retrying one provider: which failures, how long to wait, within the deadline and budget.

The fallback service is the only retry loop (adapters never retry). It is a
`tenacity.Retrying` built per provider from database values, with one stop rule
that knows the attempt cap, the request deadline (no sleep crosses it, no
attempt starts with less than FALLBACK_MIN_ATTEMPT_S left) and the retry budget.
"""

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import tenacity

from ..adapters.errors import ProviderError
from ..conf import get_setting
from . import counters, metrics
from .clock import get_clock

logger = logging.getLogger("providers_app.retry")

_random = random.Random()


class Deadline:
    """The time one request may take, across every attempt, sleep and provider."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self._end = get_clock().monotonic() + seconds

    def remaining(self) -> float:
        return max(self._end - get_clock().monotonic(), 0.0)

    def allows_attempt(self, *, after_sleep: float = 0.0) -> bool:
        return self.remaining() - after_sleep >= get_setting("MIN_ATTEMPT_S")


def is_retryable(error: ProviderError) -> bool:
    """May the same provider be asked again? `x-should-retry: false` always wins."""
    if error.should_retry is False or not error.policy.retry_same:
        return False
    if error.policy.retry_only_if_hint_fits and error.retry_after is not None:
        return error.retry_after <= get_setting("MAX_INLINE_RETRY_AFTER_S")
    return True


def wait_before_retry(error: ProviderError, attempt_number: int) -> float:
    """A server's hint, never shortened (U(hint, 1.2 * hint)); else full-jitter
    exponential backoff, U(0, min(max, base * 2^(n-1)))."""
    if error.retry_after:
        return _random.uniform(error.retry_after, 1.2 * error.retry_after)
    ceiling = min(
        get_setting("BACKOFF_MAX_S"), get_setting("BACKOFF_BASE_S") * 2 ** (attempt_number - 1)
    )
    return _random.uniform(0, ceiling)


def retry_budget_allows(provider_id: int) -> bool:
    """Retries in the window stay within max(MIN, RATIO x first attempts)."""
    window = counters.window_counts(provider_id)
    allowance = max(
        get_setting("RETRY_BUDGET_MIN"), get_setting("RETRY_BUDGET_RATIO") * window.first_attempts
    )
    return window.retries + 1 <= allowance


@dataclass
class RetryLog:
    """What the loop decided, for the result and the failover event."""

    budget_refused: bool = False
    stopped_by_deadline: bool = False
    extra: dict = field(default_factory=dict)


def retrying_for(
    *,
    provider_id: int,
    provider_name: str,
    max_attempts: int,
    deadline: Deadline,
    may_continue: Callable[[], bool],
    log: RetryLog,
) -> tenacity.Retrying:
    """The retry loop of one provider within one request."""

    def stop(state: tenacity.RetryCallState) -> bool:
        if state.attempt_number >= max_attempts or not may_continue():
            return True
        if not deadline.allows_attempt(after_sleep=state.upcoming_sleep):
            log.stopped_by_deadline = True
            return True
        try:
            allowed = retry_budget_allows(provider_id)
        except Exception:  # the budget is advisory: a store error must not stop a retry
            logger.exception("retry budget unreadable for provider %s", provider_name)
            allowed = True
        if not allowed:
            log.budget_refused = True
            counters.count(provider_id, budget_refusals=1)
            metrics.BUDGET_REFUSALS.labels(provider=provider_name).inc()
        return not allowed

    def wait(state: tenacity.RetryCallState) -> float:
        return wait_before_retry(state.outcome.exception(), state.attempt_number)

    def before_sleep(state: tenacity.RetryCallState) -> None:
        metrics.RETRIES.labels(provider=provider_name).inc()
        logger.info(
            "retry provider=%s attempt=%s sleep=%.3f error=%s",
            provider_name, state.attempt_number + 1, state.upcoming_sleep,
            state.outcome.exception(),
        )  # fmt: skip

    return tenacity.Retrying(
        stop=stop,
        wait=wait,
        retry=tenacity.retry_if_exception(
            lambda exc: isinstance(exc, ProviderError) and is_retryable(exc)
        ),
        before_sleep=before_sleep,
        sleep=lambda seconds: get_clock().sleep(seconds),
        reraise=True,
    )
