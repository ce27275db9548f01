"""THE policy: after a failed attempt, retry here, fail over, continue, or stop.

`decide()` is the only function in production that makes that choice. The route
loop (`fallback._Route`) and tenacity's retry, wait and stop callbacks
(`retry.retrying_for`) ask it; nothing else re-derives the policy. It applies
the static table (`adapters.errors.POLICY`) with what the table cannot know: the
settings in force (inline-wait cap, minimum attempt time, backoff), the time
left, whether the attempt was a half-open probe, whether output already reached
the client (then the answer is continued elsewhere or the stream stops; never a
retry), whether this failure opened the breaker, and the retry budget.

Whose fault a failure is, is judged here too (`client_misfit`): what the
client controls never counts against shared state (DESIGN §4, §12). An answer
that misses the client's own response_format, or a timeout of a non-streamed
request that asks for more output than a provider can produce in its time, may
fail over FALLBACK_MISFIT_FAILOVERS times, never continues a stream, and ends
as the client's error; breaker, cooldown and health are untouched.

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

from ..adapters.errors import Category, ProviderError, provider_error
from ..conf import get_setting

_random = random.Random()
CONNECT_TIMED_OUT = "connect timed out"  # adapters.classify's message: never the client's

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
    earlier_misfits: int = 0,
) -> Decision:
    """The one retry / fail over / stop decision.

    `attempt` is the number of the attempt that failed (1 for the first);
    `time_left_s` is the time this provider may still use (see
    `attempt_timeout_s`). `budget_allows` is asked last, only when a retry is
    otherwise allowed, because a refusal is counted. `failover_on_content_filter`
    is the route's choice (None: FALLBACK_FAILOVER_ON_CONTENT_FILTER).
    `earlier_misfits` counts the client misfits this request already had.
    """
    policy = error.policy
    if policy.client_misfit:
        return _after_misfit(error, output_sent=output_sent, earlier=earlier_misfits)
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


def _after_misfit(error: ProviderError, *, output_sent: bool, earlier: int) -> Decision:
    """The client's own misfit: another provider may meet the request, a few
    times; a retry here would not, a cooldown would punish the provider, and a
    continuation cannot turn a wrong answer into a right one."""
    if output_sent:
        return Decision(Action.STOP, f"{error.category}: the answer already sent cannot be fixed")
    allowed = get_setting("MISFIT_FAILOVERS")
    if earlier >= allowed:
        return Decision(Action.STOP, f"{error.category} after {allowed} failover(s) for it")
    return Decision(Action.FAIL_OVER, f"{error.category}: the client's misfit, try the next")


def client_misfit(
    error: ProviderError, *, max_tokens: int | None, streamed: bool, attempt_timeout_s: float
) -> ProviderError:
    """The error as the decision judges it: a timeout may be the client's misfit.

    A silent provider and a request asking more than any provider can do in time
    look alike from here: a non-streamed answer arrives whole, or not at all.
    The rule: a non-streamed attempt that timed out after connecting, for a
    request whose `max_tokens` takes longer than the attempt's timeout at
    FALLBACK_EXPECTED_TOKENS_PER_S, is the client's (`output_too_slow`). A
    silent provider is still caught by every other request (a streamed one
    misses its first-token limit) and by the health checks.
    """
    if (
        error.category != Category.TIMEOUT
        or streamed
        or max_tokens is None
        or error.message == CONNECT_TIMED_OUT
        or max_tokens <= attempt_timeout_s * get_setting("EXPECTED_TOKENS_PER_S")
    ):
        return error
    return provider_error(
        Category.OUTPUT_TOO_SLOW,
        f"the request asks for up to {max_tokens} output tokens, more than a provider "
        f"produces in its {attempt_timeout_s:g}s timeout ({error.message}); stream it "
        "(stream: true) or lower max_tokens",
        provider=error.provider,
        request_id=error.request_id,
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
