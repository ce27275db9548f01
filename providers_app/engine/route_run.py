"""One request's walk down its route: the only caller of adapters.

For each provider in the route's order: ask the breaker for permission, call the
adapter (retrying on the same provider as `decision.decide()` allows), record
the outcome with the breaker, then retry, fail over or stop. Failing over writes
one FailoverEvent; skipping a provider whose breaker is open writes nothing (its
transition was recorded).
"""

import functools
import logging
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from decimal import Decimal
from typing import Generic, TypeVar

from ..adapters.base import ChatRequest, ProviderAdapter
from ..adapters.cancel import ClientGone
from ..adapters.errors import Category, ProviderBadResponseError, ProviderError, provider_error
from ..adapters.timing import Deadline
from ..conf import get_setting
from ..models import FailoverEvent
from ..reasons import Reason
from ..selectors import RouteEntry
from ..selectors.call_stats import answered_how
from . import budgets, counters, metrics, usage
from .adapter_pool import adapter_for_entry
from .breaker import (
    Denial,
    Permit,
    breaker_acquire,
    breaker_cool_down,
    breaker_record_failure,
    breaker_record_success,
    breaker_release,
    breaker_retry_at,
)
from .budgets import Admission
from .capabilities import capable_entries
from .clock import get_clock
from .continuation import continuation_refused, is_continuation_refusal
from .decision import (
    Action,
    Decision,
    attempt_timeout_s,
    client_misfit,
    decide,
    may_start_attempt,
    provider_time_left_s,
    window_may_fit,
)
from .events import all_failed_events, failover_event_record
from .outcomes import (
    AllProvidersFailed,
    FallbackError,
    NoContinuation,
    ProviderReason,
    RequestFailed,
)
from .retry import retry_budget_check, retrying_for
from .routing import ResolvedRoute
from .tracing import TraceRecorder, first_output_s

Skip = FailoverEvent.SkipReason

logger = logging.getLogger("providers_app.fallback")

T = TypeVar("T")


# ---------------------------------------------------------------------------
# Routing one request
# ---------------------------------------------------------------------------


@dataclass
class Routed(Generic[T]):
    entry: RouteEntry
    permit: Permit
    value: T
    latency_s: float
    started: float


@dataclass
class _PendingFailover:
    entry: RouteEntry
    error: ProviderError
    decision: Decision
    attempt: int
    latency_ms: float


@dataclass
class _ProviderAttempts:
    """One provider's attempts within one request, as the decision needs them."""

    entry: RouteEntry
    permit: Permit
    budget_allows: Callable[[], bool]
    opened: bool = False  # a failure opened the breaker: no retry here
    decision: Decision | None = None  # the last one


class _ProviderFailed(Exception):
    """One provider failed for this request; `decision` says what happens next."""

    def __init__(self, error: ProviderError, decision: Decision):
        super().__init__(str(error))
        self.error = error
        self.decision = decision


@dataclass
class RouteRun:
    """One request's walk down the provider list."""

    request: ChatRequest
    request_id: str | None
    deadline_s: float | None
    # The route this request walks, resolved once by the caller (fallback.route_for()
    # or the API); its entries are the snapshot the walk follows.
    resolved: ResolvedRoute
    attempts: int = 0
    failovers: int = 0
    skipped: list[ProviderReason] = field(default_factory=list)
    failures: list[ProviderReason] = field(default_factory=list)
    # A continuation (mid-stream rescue): the providers whose stream was cut are
    # not asked, and a provider's refusal (a 400 to the prefill) moves on to the
    # next capable provider instead of answering the client with it.
    exclude: frozenset[str] = frozenset()
    continuation: bool = False
    # Records each step for the request's trace (engine/tracing.py); a
    # continuation adds its steps to the trace of the request it continues.
    trace: TraceRecorder | None = None
    key_name: str = ""  # the client key's name, for usage and budgets ("" in-process)
    # The budgets' reservations (engine/budgets.py); a continuation shares its stream's.
    admission: Admission | None = None
    # Told the name of each provider as its turn starts (the chat page shows
    # "waiting for secondary"); never allowed to break the request.
    on_attempt: Callable[[str], None] | None = None

    def __post_init__(self) -> None:
        self.request_id = self.request_id or uuid.uuid4().hex
        if self.trace is None:
            self.trace = TraceRecorder(self.request_id)
            self.trace.route = self.resolved.name
        self.deadline = Deadline(
            self.deadline_s or self.resolved.deadline_s or get_setting("DEADLINE_S")
        )
        if not self.continuation:
            self.admission = budgets.admit(
                key_name=self.key_name,
                route_name=self.resolved.name,
                request=self.request,
                dearest=_dearest_prices(self.resolved.entries),
                request_id=self.request_id,
            )
        self._pending: _PendingFailover | None = None
        self._others_waiting = False
        self._failed_ids: dict[str, int] = {}
        self._misfit_errors: list[ProviderError] = []

    def run(self, call: Callable[[ProviderAdapter, ChatRequest, float], T]) -> Routed[T]:
        too_small: list[tuple[str, int | None]] = []  # (provider, window) too small
        context_error: ProviderError | None = None
        snapshot = [e for e in self.resolved.entries if e.name not in self.exclude]
        entries = list(
            capable_entries(snapshot, self.request, skip=self._skip, request_id=self.request_id)
        )
        for position, entry in enumerate(entries):
            if too_small and not window_may_fit(entry.context_window, [w for _, w in too_small]):
                self._skip(entry, Denial(Skip.CONTEXT_WINDOW))
                continue
            if not may_start_attempt(self.deadline.remaining()):
                self._skip(entry, Denial(Skip.DEADLINE))
                continue
            self._others_waiting = position < len(entries) - 1
            permission: Permit | Denial | None = None
            try:
                timeout = self._attempt_timeout(entry)
                permission = breaker_acquire(entry=entry, attempt_timeout_s=timeout)
                if isinstance(permission, Denial):
                    self._skip(entry, permission)
                    continue
                self._flush_failover(to=entry)
            except Exception as exc:  # a bug of ours before the call: the next provider
                self._internal_error(entry, exc, where="route")
                if isinstance(permission, Permit):
                    breaker_release(permit=permission)
                continue
            self._announce(entry)
            try:
                return self._call_provider(entry, permission, call)
            except _ProviderFailed as failed:
                error, decision = failed.error, failed.decision
                if decision.action is Action.STOP and self.continuation:
                    logger.warning(
                        "continuation refused provider=%s category=%s request_id=%s: %s",
                        entry.name, error.category, self.request_id, error.message,
                    )  # fmt: skip
                    if is_continuation_refusal(error):  # learned: not asked again
                        continuation_refused(
                            entry, error, request_id=self.request_id, route=self.resolved.name
                        )
                    continue
                if decision.action is Action.STOP:
                    if error.policy.client_misfit:
                        error = self._misfit_error()
                    raise RequestFailed(
                        error, request_id=self.request_id, attempts=self.attempts
                    ) from error
                if decision.only_larger_window:
                    too_small.append((entry.name, entry.context_window))
                    context_error = error
            except (FallbackError, ClientGone):
                raise
            except Exception as exc:  # a bug of ours around the call (permit released)
                self._internal_error(entry, exc, where="attempt")
        self._flush_failover(to=None)
        if self.continuation:
            raise NoContinuation(
                "no provider continued the answer ("
                + "; ".join(f"{r.provider}: {r.reason}" for r in self.failures + self.skipped)
                + ")",
                request_id=self.request_id,
            )
        if self._misfit_errors and len(self._misfit_errors) == len(self.failures):
            # Every provider that answered missed what the client asked: the client's error.
            raise RequestFailed(
                self._misfit_error(), request_id=self.request_id, attempts=self.attempts
            )
        if context_error is not None and not any(
            f.reason != Category.CONTEXT_LENGTH for f in self.failures
        ):
            # Nobody with a larger window: the caller's prompt is too long everywhere.
            raise RequestFailed(
                _too_long_everywhere(context_error, too_small),
                request_id=self.request_id,
                attempts=self.attempts,
            )
        raise self._all_failed()

    def _announce(self, entry: RouteEntry) -> None:
        if self.on_attempt is None:
            return
        try:
            self.on_attempt(entry.name)
        except Exception:  # a listener's bug must not cost the request
            logger.exception("on_attempt listener failed request_id=%s", self.request_id)

    def finished(self, entry: RouteEntry, *, rescued: bool = False) -> None:
        """Count the answer: on /metrics and on the provider's buckets, under one
        `how` (selectors.call_stats.answered_how defines it)."""
        metrics.REQUESTS.labels(
            provider=entry.name, outcome="success", route=self.resolved.name
        ).inc()
        passed_by = {r.provider for r in (*self.failures, *self.skipped)} - {entry.name}
        how = answered_how(attempts=self.attempts, passed_by=bool(passed_by) or rescued)
        metrics.ANSWERS.labels(provider=entry.name, route=self.resolved.name, how=how).inc()
        counters.count(entry.id, **{f"answered_{how}": 1})

    def bill(
        self,
        entry: RouteEntry,
        *,
        input_tokens: int | None,
        output_tokens: int | None,
        cached_input_tokens: int | None,
        output_text: str,
        failed_attempt: bool = False,
    ) -> None:
        """Record what `entry` billed for one attempt (engine/usage.py)."""
        try:
            billed = usage.measured(
                input_tokens,
                output_tokens,
                cached_input_tokens,
                prompt_text=self._prompt_text,
                output_text=output_text,
                failed_attempt=failed_attempt,
            )
            first = self.resolved.entries[0] if self.resolved.entries else None
            cost = usage.record(
                billed, entry=entry, route=self.resolved.name, key_name=self.key_name, first=first
            )
            if self.admission is not None:
                self.admission.charge(billed.total_tokens, cost)
        except Exception:  # bookkeeping must never cost the caller the answer
            logger.exception("usage not recorded request_id=%s", self.request_id)
            metrics.INTERNAL_ERRORS.labels(where="usage").inc()

    def settle_budgets(self) -> None:
        """The request is over: its reservations become what was billed."""
        if self.admission is not None:
            self.admission.settle()

    def bill_failed(self, entry: RouteEntry, error: ProviderError) -> None:
        """A failed attempt the vendor billed: a stream cut after output."""
        self.bill(
            entry,
            input_tokens=error.input_tokens,
            output_tokens=error.output_tokens,
            cached_input_tokens=error.cached_input_tokens,
            output_text=error.partial_text,
            failed_attempt=True,
        )

    def _prompt_text(self) -> str:
        return "\n".join(message.text for message in self.request.messages)

    def _internal_error(self, entry: RouteEntry, exc: Exception, *, where: str) -> None:
        """A bug in the engine's own code while serving one provider: logged with
        its traceback and counted; the request moves on to the next provider (no
        upstream output was sent, so that is safe)."""
        logger.error(
            "internal error in the %s step provider=%s request_id=%s",
            where, entry.name, self.request_id, exc_info=exc,
        )  # fmt: skip
        metrics.INTERNAL_ERRORS.labels(where=where).inc()
        self.trace.internal_error(entry.name, Reason.INTERNAL_ERROR)
        self.failures.append(
            ProviderReason(
                entry.name, Reason.INTERNAL_ERROR, None, f"{type(exc).__name__} (logged)"
            )
        )

    def _call_provider(
        self,
        entry: RouteEntry,
        permit: Permit,
        call: Callable[[ProviderAdapter, ChatRequest, float], T],
    ) -> Routed[T]:
        clock = get_clock()
        attempts = _ProviderAttempts(entry, permit, retry_budget_check(entry.id, entry.name))
        streamed = _streams(call)
        started = clock.monotonic()
        try:
            judge = functools.partial(self._judge, attempts)
            for attempt in retrying_for(provider_name=entry.name, judge=judge):
                with attempt:
                    number = attempt.retry_state.attempt_number
                    counters.count(entry.id, **{"first_attempts" if number == 1 else "retries": 1})
                    self.attempts += 1
                    attempt_started = clock.monotonic()
                    step = self.trace.attempt_started(entry.name)
                    timeout = self._attempt_timeout(entry)
                    try:
                        value = _call_adapter(entry, call, self.request, timeout)
                    except ProviderError as raised:
                        error = client_misfit(
                            raised,
                            max_tokens=self.request.max_tokens,
                            streamed=streamed,
                            attempt_timeout_s=timeout,
                        )
                        self.trace.attempt_failed(step, error)
                        if raised.output_produced:  # a held-back stream cut after output
                            self.bill_failed(entry, raised)
                        elapsed = clock.monotonic() - attempt_started
                        metrics.ATTEMPT_LATENCY.labels(entry.name, error.category).observe(elapsed)
                        counters.count_failure(entry.id, error.category)
                        attempts.opened = breaker_record_failure(
                            entry=entry, permit=permit, error=error
                        )
                        if error is raised:
                            raise
                        raise error from raised
                    latency = clock.monotonic() - attempt_started
                    self.trace.attempt_answered(step, first_output_s=first_output_s(value, latency))
                    metrics.ATTEMPT_LATENCY.labels(entry.name, "success").observe(latency)
                    return Routed(entry, permit, value, latency, attempt_started)
        except ProviderError as error:
            decision = attempts.decision  # tenacity asked `judge` before it stopped
            if decision is None:  # pragma: no cover
                raise
            self._failed_ids[entry.name] = entry.id
            self._pending = _PendingFailover(
                entry,
                error,
                decision,
                attempt=self.attempts,
                latency_ms=(clock.monotonic() - started) * 1000,
            )
            raise _ProviderFailed(error, decision) from error
        except BaseException:
            # Cancelled mid-call (deadline, client gone): a probe slot goes back.
            breaker_release(permit=permit)
            raise
        raise AssertionError("tenacity returned without an outcome")  # pragma: no cover

    def _judge(self, attempts: "_ProviderAttempts", error: ProviderError, number: int) -> Decision:
        """What `decide()` says about one failed attempt (tenacity's callbacks ask),
        applied at once."""
        entry = attempts.entry
        decision = decide(
            error,
            attempt=number,
            max_attempts=entry.max_attempts,
            time_left_s=self._provider_time_left(),
            probe=attempts.permit.is_probe,
            breaker_opened=attempts.opened,
            budget_allows=attempts.budget_allows,
            failover_on_content_filter=self.resolved.failover_on_content_filter,
            earlier_misfits=self.misfits(),
        )
        attempts.decision = decision
        self.trace.decided(decision)
        self.apply(entry, error, decision)
        return decision

    def apply(self, entry: RouteEntry, error: ProviderError, decision: Decision) -> None:
        """Do what a Decision says about `entry`'s failure: the one place that does.

        Every action may cool the provider down (shared by every process). A
        retry is then tenacity's to wait out; any other action (fail over,
        stop, continue elsewhere) ends this provider's part in the request, and
        its reason is kept for the caller's error and the failover event.
        """
        if decision.cooldown_s:
            breaker_cool_down(provider_id=entry.id, seconds=decision.cooldown_s)
        if decision.action is Action.RETRY:
            return
        retry_at = (
            get_clock().now() + timedelta(seconds=decision.cooldown_s)
            if decision.cooldown_s
            else None
        )
        self.failures.append(
            ProviderReason(entry.name, error.category, error.status_code, error.message, retry_at)
        )
        if error.policy.client_misfit:
            self._misfit_errors.append(error)

    def misfits(self) -> int:
        """The client misfits this request had so far (decide() bounds their failovers)."""
        return len(self._misfit_errors)

    def _provider_time_left(self) -> float:
        return provider_time_left_s(self.deadline.remaining(), others_waiting=self._others_waiting)

    def _attempt_timeout(self, entry: RouteEntry) -> float:
        return attempt_timeout_s(entry.timeout_s, self._provider_time_left())

    def _skip(self, entry: RouteEntry, denial: Denial) -> None:
        """Skipping writes no event: the breaker transition already recorded the outage."""
        self.skipped.append(ProviderReason(entry.name, denial.reason, retry_at=denial.retry_at))
        self.trace.skipped(entry.name, denial.reason)
        metrics.SKIPS.labels(provider=entry.name, reason=denial.reason).inc()
        if denial.reason in (Skip.OPEN, Skip.FORCED_OPEN, Skip.COOLDOWN, Skip.HALF_OPEN_BUSY):
            counters.count(entry.id, not_permitted=1)

    def _flush_failover(self, *, to: RouteEntry | None) -> None:
        """Write the FailoverEvent of the provider that just failed, now that the
        next one (or none) is known."""
        pending, self._pending = self._pending, None
        if pending is None:
            return
        if to is not None:
            self.failovers += 1
        error = pending.error
        detail = f"{pending.decision.why}; {error.message}"
        # In a continuation a refusal (STOP) is the provider declining the prefill.
        refused = self.continuation and pending.decision.action is Action.STOP
        failover_event_record(
            kind=FailoverEvent.Kind.PREFILL_REFUSED if refused else FailoverEvent.Kind.FAILOVER,
            delivered_chars=self._prefill_chars() if self.continuation else None,
            provider_id=pending.entry.id,
            to_provider_id=to.id if to else None,
            reason=error.category,
            status_code=error.status_code,
            detail=detail,
            attempt=pending.attempt,
            latency_ms=pending.latency_ms,
            request_id=self.request_id,
            route=self.resolved.name,
        )
        metrics.FAILOVERS.labels(
            from_provider=pending.entry.name,
            to_provider=to.name if to else "",
            reason=error.category,
        ).inc()

    def _prefill_chars(self) -> int:
        """How much of the answer a continuation carries (its final assistant message)."""
        content = self.request.messages[-1].content if self.request.messages else ""
        return len(content) if isinstance(content, str) else 0

    def _failures_with_breaker_times(self) -> list[ProviderReason]:
        if not self.failures:
            return []
        breaker_times = breaker_retry_at(provider_ids=list(self._failed_ids.values()))
        updated = []
        for reason in self.failures:
            known = [reason.retry_at, breaker_times.get(self._failed_ids.get(reason.provider, -1))]
            retry_at = max((t for t in known if t is not None), default=None)
            updated.append(replace(reason, retry_at=retry_at))
        return updated

    def _all_failed(self) -> AllProvidersFailed:
        reasons = self._failures_with_breaker_times() + self.skipped
        # The soonest any provider may really be tried again: a failure that
        # opened its breaker (or cooled it down) waits for that; one that did
        # neither may be tried at once.
        now = get_clock().now()
        waits = [(r.retry_at - now).total_seconds() if r.retry_at else 0.0 for r in reasons]
        retry_after = max(1, math.ceil(min(waits, default=0.0)))
        all_failed_events.record(
            reason=Reason.ALL_FAILED,
            detail="; ".join(f"{r.provider}: {r.reason}" for r in reasons)[:500],
            request_id=self.request_id,
            route=self.resolved.name,
        )
        metrics.REQUESTS.labels(provider="", outcome="all_failed", route=self.resolved.name).inc()
        return AllProvidersFailed(reasons, retry_after_s=retry_after, request_id=self.request_id)

    def _misfit_error(self) -> ProviderError:
        """The client's error after its misfits, naming every provider's."""
        last = self._misfit_errors[-1]
        detail = "; ".join(f"{e.provider}: {e.message}" for e in self._misfit_errors)
        return provider_error(
            last.category,
            f"No answer met the request ({detail}).",
            provider=last.provider,
            request_id=last.request_id,
        )


def _streams(call: Callable) -> bool:
    """Whether `call` opens a stream (engine.streams' openers set `streams`)."""
    return bool(getattr(getattr(call, "func", call), "streams", False))


def _dearest_prices(entries) -> tuple[Decimal, Decimal]:
    """The highest input and output prices on the route: what a budget reserves at."""
    zero = Decimal(0)
    return (
        max((e.price_input_per_mtok or zero for e in entries), default=zero),
        max((e.price_output_per_mtok or zero for e in entries), default=zero),
    )


def _too_long_everywhere(
    error: ProviderError, tried: list[tuple[str, int | None]]
) -> ProviderError:
    """The context-length error the caller gets, naming every window tried."""
    windows = ", ".join(
        f"{name} ({f'{window} tokens' if window else 'window unknown'})" for name, window in tried
    )
    return provider_error(
        Category.CONTEXT_LENGTH,
        f"The prompt is too long for every provider that was tried: {windows}.",
        provider=error.provider,
        status_code=error.status_code,
        request_id=error.request_id,
    )


def _call_adapter(
    entry: RouteEntry,
    call: Callable[[ProviderAdapter, ChatRequest, float], T],
    request: ChatRequest,
    timeout: float,
) -> T:
    """One attempt; whatever the adapter raises leaves as a ProviderError."""
    try:
        return call(adapter_for_entry(entry), request, timeout)
    except (ProviderError, ClientGone):
        raise
    except Exception as exc:
        raise unexpected_failure(exc, entry) from exc


def unexpected_failure(exc: Exception, entry: RouteEntry) -> ProviderError:
    """An adapter raised something that is not a ProviderError: upstream input it
    could not handle (a 5000-deep JSON body raises RecursionError) or a bug of
    ours. Either way the provider did not answer usably: a classified
    malformed_response (the breaker counts it, the route fails over), logged
    with its traceback so that a bug is seen."""
    logger.error(
        "adapter raised %s provider=%s; treated as malformed_response",
        type(exc).__name__, entry.name, exc_info=exc,
    )  # fmt: skip
    return ProviderBadResponseError(
        f"the response could not be processed ({type(exc).__name__})",
        provider=entry.name,
        category=Category.MALFORMED_RESPONSE,
    )


def record_answer(entry: RouteEntry, permit: Permit, *, latency_s: float, total_s: float) -> None:
    """Record an answer: time to first output and total time, to the counters the
    dashboard reads and to /metrics, under the same two definitions."""
    breaker_record_success(entry=entry, permit=permit, latency_s=latency_s, total_s=total_s)
    metrics.ANSWER_SECONDS.labels(entry.name).observe(total_s)
