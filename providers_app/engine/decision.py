"""THE policy: after a failed attempt, retry here, fail over, continue, or stop.

`decide()` is the only function in production that makes that choice. The route
loop (`fallback._Route`) and tenacity's retry, wait and stop callbacks
(`retry.retrying_for`) ask it; nothing else re-derives the policy. It applies
the static table (`adapters.errors.POLICY`) with what the table cannot know: the
settings in force (inline-wait cap, minimum attempt time, backoff), the time
left, whether the attempt was a half-open probe, whether output already reached
the client (then the answer is continued elsewhere or the stream stops; never a
retry), whether this failure opened the breaker, and the retry budget.

The other rules of conduct live here too, so that one module says how a
request spends its deadline: the share a provider may use while others wait
(`provider_time_left_s`), how long one attempt may take (`attempt_timeout_s`),
and which providers may still help with a prompt too long for a window
(`window_may_fit`). docs/engine.md explains every rule with its numbers.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum

from ..adapters.errors import Category, ProviderError
from ..conf import get_setting

_random = random.Random()

# Without a hint, a rate-limited provider is skipped for this long by every process.
RATE_LIMIT_COOLDOWN_S = 1.0


class Action(StrEnum):
    RETRY = "retry"  # the same provider again, after `wait_s`
    FAIL_OVER = "fail_over"  # the next provider in the route
    STOP = "stop"  # answer the caller with this error now
    # After output reached the client: the next provider that can continue the
    # partial answer (a prefill) finishes it; see docs/engine.md "Mid-stream rescue".
    CONTINUE = "continue"


@dataclass(frozen=True)
class Decision:
    """What to do after one failed attempt, and why (for logs and events)."""

    action: Action
    why: str
    wait_s: float = 0.0
    # Every process skips the provider for this long (shared `cooldown_until`).
    cooldown_s: float | None = None
    # A failover may only go to a provider whose window may be larger.
    only_larger_window: bool = False

    @property
    def retries(self) -> bool:
        return self.action is Action.RETRY


def decide(
    error: ProviderError,
    *,
    attempt: int,
    max_attempts: int,
    time_left_s: float,
    probe: bool = False,
    output_sent: bool = False,
    tool_calls_sent: bool = False,
    breaker_opened: bool = False,
    budget_allows: Callable[[], bool] | None = None,
    failover_on_content_filter: bool | None = None,
) -> Decision:
    """The one retry / fail over / stop decision.

    `attempt` is the number of the attempt that failed (1 for the first);
    `time_left_s` is the time this provider may still use (see
    `attempt_timeout_s`). `budget_allows` is asked last, only when a retry is
    otherwise allowed, because a refusal is counted. `failover_on_content_filter`
    is the route's choice (None: FALLBACK_FAILOVER_ON_CONTENT_FILTER).
    """
    policy = error.policy
    category = error.category
    can_fail_over = policy.failover
    if category == Category.CONTENT_FILTER:
        can_fail_over = bool(
            get_setting("FAILOVER_ON_CONTENT_FILTER")
            if failover_on_content_filter is None
            else failover_on_content_filter
        )
    if output_sent:
        return _after_output(error, can_fail_over=can_fail_over, tool_calls_sent=tool_calls_sent)
    hint = _usable_hint(error.retry_after)

    why = _why_not_retry(
        error, attempt=attempt, max_attempts=max_attempts, probe=probe, opened=breaker_opened
    )
    wait = 0.0
    if why is None:
        wait = _wait_s(hint, attempt)
        if hint is not None and hint > get_setting("MAX_INLINE_RETRY_AFTER_S"):
            why = f"wait hint {hint:g}s is over the inline cap"
        elif time_left_s - wait < get_setting("MIN_ATTEMPT_S"):
            why = (
                f"wait hint {hint:g}s does not fit the time left"
                if hint is not None
                else "no time left for another attempt"
            )
        elif budget_allows is not None and not budget_allows():
            why = "retry refused by the retry budget"

    cooldown = None
    if category == Category.RATE_LIMIT:
        cooldown = hint or RATE_LIMIT_COOLDOWN_S
    elif why is not None and hint is not None:
        # A hint we do not wait out inline, whatever the status: nobody else
        # should call the provider before it said it would answer.
        cooldown = hint

    if why is None:
        return Decision(Action.RETRY, f"retry after {category}", wait_s=wait, cooldown_s=cooldown)
    action = Action.FAIL_OVER if can_fail_over else Action.STOP
    return Decision(
        action,
        why,
        cooldown_s=cooldown,
        only_larger_window=policy.failover_only_to_larger_window,
    )


def _after_output(error: ProviderError, *, can_fail_over: bool, tool_calls_sent: bool) -> Decision:
    """A committed stream failed: continue the answer elsewhere, or end it honestly.

    Never a retry on the same provider (the client already has part of its
    answer). A half-sent tool call cannot be continued: no vendor resumes a
    partial tool call from a prefill.
    """
    if error.category == Category.STREAM_MAX_DURATION:
        return Decision(Action.STOP, "the stream reached its maximum duration")
    if not can_fail_over:
        return Decision(Action.STOP, f"{error.category} is not failed over")
    if tool_calls_sent:
        return Decision(Action.STOP, "a tool call was partly sent; it cannot be continued")
    return Decision(Action.CONTINUE, f"continue the answer after {error.category}")


def _why_not_retry(
    error: ProviderError, *, attempt: int, max_attempts: int, probe: bool, opened: bool
) -> str | None:
    if not error.policy.retry_same:
        return f"{error.category} is not retried on the same provider"
    if error.should_retry is False:
        return "the provider said x-should-retry: false"
    if probe:
        return "a half-open probe gets one attempt"
    if opened:
        return "this failure opened the breaker"
    if attempt >= max_attempts:
        return f"{max_attempts} attempt(s) made"
    return None


def _usable_hint(retry_after: float | None) -> float | None:
    if retry_after is None or not math.isfinite(retry_after) or retry_after <= 0:
        return None
    return retry_after


def _wait_s(hint: float | None, attempt: int) -> float:
    """A server's hint, never shortened (U(hint, 1.2 x hint)); else full-jitter
    exponential backoff, U(0, min(max, base x 2^(n-1)))."""
    if hint is not None:
        return _random.uniform(hint, 1.2 * hint)
    ceiling = min(get_setting("BACKOFF_MAX_S"), get_setting("BACKOFF_BASE_S") * 2 ** (attempt - 1))
    return _random.uniform(0, ceiling)


def may_start_attempt(time_left_s: float) -> bool:
    """No attempt starts with less than FALLBACK_MIN_ATTEMPT_S left."""
    return time_left_s >= get_setting("MIN_ATTEMPT_S")


def provider_time_left_s(time_left_s: float, *, others_waiting: bool) -> float:
    """The part of the request's time left one provider may use, its retries
    included. While other providers wait behind it, FALLBACK_DEADLINE_RESERVE_SHARE
    of the time left stays for them (45 s deadline: at most 33.75 s for the first)."""
    if not others_waiting:
        return time_left_s
    return time_left_s * (1.0 - get_setting("DEADLINE_RESERVE_SHARE"))


def attempt_timeout_s(provider_timeout_s: float, time_left_s: float) -> float:
    """One attempt's timeout: the provider's own, shortened by the time it may use."""
    return max(min(provider_timeout_s, time_left_s), 0.001)


def window_may_fit(window: int | None, tried: Iterable[int | None]) -> bool:
    """After a context-length failure, may a provider with `window` help?

    Only if it is larger than every known window that was too small. An unknown
    window (None) may be larger, so it is tried; so is any window when only
    unknown ones failed.
    """
    known = [w for w in tried if w is not None]
    return window is None or not known or window > max(known)
