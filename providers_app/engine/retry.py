"""Retrying one provider: tenacity, driven by the one decision.

The fallback service is the only retry loop (adapters never retry). It is a
`tenacity.Retrying` built per provider and request whose retry, wait and stop
callbacks all ask `decision.decide()` (through the `judge` the route passes in,
which knows the provider, the time left and the breaker's answer), once per
failed attempt. This module adds only the retry budget and the bookkeeping.
"""

import logging
from collections.abc import Callable

import tenacity

from ..adapters.errors import ProviderError
from ..conf import get_setting
from . import counters, metrics
from .clock import get_clock
from .decision import Decision

logger = logging.getLogger("providers_app.retry")

Judge = Callable[[ProviderError, int], Decision]


def retry_budget_allows(provider_id: int) -> bool:
    """Retries in the window stay within max(MIN, RATIO x first attempts)."""
    window = counters.window_counts(provider_id)
    allowance = max(
        get_setting("RETRY_BUDGET_MIN"), get_setting("RETRY_BUDGET_RATIO") * window.first_attempts
    )
    return window.retries + 1 <= allowance


def retry_budget_check(provider_id: int, provider_name: str) -> Callable[[], bool]:
    """The budget question `decide()` asks last; a refusal is counted."""

    def allows() -> bool:
        try:
            allowed = retry_budget_allows(provider_id)
        except Exception:  # the budget is advisory: a store error must not stop a retry
            logger.exception("retry budget unreadable for provider %s", provider_name)
            return True
        if not allowed:
            counters.count(provider_id, budget_refusals=1)
            metrics.BUDGET_REFUSALS.labels(provider=provider_name).inc()
        return allowed

    return allows


def retrying_for(*, provider_name: str, judge: Judge) -> tenacity.Retrying:
    """The retry loop of one provider within one request."""
    decisions: dict[int, Decision] = {}

    def decision(state: tenacity.RetryCallState) -> Decision:
        # retry, wait and stop are asked in turn about one outcome: decide once.
        if state.attempt_number not in decisions:
            decisions[state.attempt_number] = judge(state.outcome.exception(), state.attempt_number)
        return decisions[state.attempt_number]

    def retry(state: tenacity.RetryCallState) -> bool:
        return isinstance(state.outcome.exception(), ProviderError) and decision(state).retries

    def before_sleep(state: tenacity.RetryCallState) -> None:
        metrics.RETRIES.labels(provider=provider_name).inc()
        logger.info(
            "retry provider=%s attempt=%s sleep=%.3f error=%s",
            provider_name, state.attempt_number + 1, state.upcoming_sleep,
            state.outcome.exception(),
        )  # fmt: skip

    return tenacity.Retrying(
        retry=retry,
        wait=lambda state: decision(state).wait_s,
        stop=lambda state: not decision(state).retries,
        before_sleep=before_sleep,
        sleep=lambda seconds: get_clock().sleep(seconds),
        reraise=True,
    )
