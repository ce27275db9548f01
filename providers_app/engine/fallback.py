"""The fallback service: the only caller of adapters.

`complete()` and `stream()` read the routing snapshot (one query), then for each
provider in priority order ask the breaker for permission, call the adapter,
record the outcome with the breaker, and then do what `decision.decide()` says:
retry on the same provider, fail over, or stop. Failing over writes one
FailoverEvent; skipping a provider whose breaker is open writes nothing (its
transition was recorded).
"""

import logging
import math
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from ..adapters.base import ChatRequest, ChatResult, Message, ProviderAdapter, StreamDelta
from ..adapters.errors import Category, ProviderBadResponseError, ProviderError, provider_error
from ..adapters.schema import ToolCall, ToolCallDelta, message_from_dict
from ..adapters.timing import Deadline
from ..conf import get_setting
from ..models import BreakerState, FailoverEvent
from ..selectors import RouteEntry, route_entry_for
from . import counters, metrics
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
from .capabilities import capable_entries
from .clock import get_clock
from .continuation import continuation_request, held_whitespace
from .decision import (
    Action,
    Decision,
    attempt_timeout_s,
    decide,
    may_start_attempt,
    provider_time_left_s,
    window_may_fit,
)
from .events import all_failed_events, failover_event_record
from .retry import retry_budget_check, retrying_for
from .routing import ResolvedRoute, routing_table

Skip = FailoverEvent.SkipReason

logger = logging.getLogger("providers_app.fallback")

T = TypeVar("T")


# ---------------------------------------------------------------------------
# What callers get back
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ProviderReason:
    """Why one provider did not answer: skipped (breaker) or failed (an error)."""

    provider: str
    reason: str
    status_code: int | None = None
    detail: str = ""
    retry_at: datetime | None = None


@dataclass(frozen=True)
class ChatCompletion:
    text: str
    finish_reason: str
    input_tokens: int | None
    output_tokens: int | None
    model: str
    provider: str
    attempts: int
    failovers: int
    request_id: str
    upstream_request_id: str | None
    latency_s: float
    skipped: tuple[ProviderReason, ...] = ()
    failures: tuple[ProviderReason, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()
    route: str = ""  # the route that served the request


@dataclass(frozen=True)
class StreamChunk:
    text: str
    finish_reason: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    tool_calls: tuple[ToolCallDelta, ...] = ()


class FallbackError(Exception):
    def __init__(self, message: str, *, request_id: str):
        super().__init__(message)
        self.request_id = request_id


class AllProvidersFailed(FallbackError):
    """No provider answered. `reasons` names each one; `retry_after_s` is the soonest
    any may be tried again (for the API's Retry-After)."""

    def __init__(self, reasons: Sequence[ProviderReason], *, retry_after_s: int, request_id: str):
        summary = "; ".join(f"{r.provider}: {r.reason}" for r in reasons) or "no providers"
        super().__init__(f"All providers failed ({summary}).", request_id=request_id)
        self.reasons = tuple(reasons)
        self.retry_after_s = retry_after_s


class RequestFailed(FallbackError):
    """Failed fast: the request itself is wrong or was filtered, on any provider."""

    def __init__(self, error: ProviderError, *, request_id: str, attempts: int):
        super().__init__(error.message, request_id=request_id)
        self.error = error
        self.category = error.category
        self.provider = error.provider
        self.attempts = attempts


class RouteNotFound(FallbackError):
    """The `model` names no route and no route is the default."""

    def __init__(self, name: str | None, *, request_id: str):
        super().__init__(f"The model {name!r} does not exist.", request_id=request_id)
        self.name = name


class CapabilityMissing(FallbackError):
    """No provider of the route can take the request without dropping part of it."""

    def __init__(self, capability: str, *, request_id: str):
        super().__init__(f"No enabled provider supports {capability}.", request_id=request_id)
        self.capability = capability


class NoContinuation(FallbackError):
    """No provider continued a cut stream (internal to ChatStream's rescue)."""


class StreamInterrupted(FallbackError):
    """A committed stream failed: output was already sent, so no failover. `partial`."""

    partial = True

    def __init__(self, error: ProviderError, *, request_id: str):
        super().__init__(error.message, request_id=request_id)
        self.error = error
        self.category = error.category
        self.provider = error.provider


# ---------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------


def build_request(messages: Sequence[Message | dict], **options: Any) -> ChatRequest:
    converted = tuple(m if isinstance(m, Message) else message_from_dict(m) for m in messages)
    if options.get("stop") is not None and not isinstance(options["stop"], tuple):
        options["stop"] = tuple(options["stop"])
    return ChatRequest(messages=converted, **{k: v for k, v in options.items() if v is not None})


def complete(
    messages: Sequence[Message | dict],
    *,
    request_id: str | None = None,
    deadline_s: float | None = None,
    route: str | None = None,
    **options: Any,
) -> ChatCompletion:
    """The first answer any provider of the route can give (`route`: a route's name,
    None or an unknown name: the default route). Raises RouteNotFound,
    AllProvidersFailed or RequestFailed."""
    route = _Route(build_request(messages, **options), request_id, deadline_s, route)
    routed = route.run(lambda adapter, request, timeout: adapter.complete(request, timeout=timeout))
    result: ChatResult = routed.value
    try:
        _answered(routed.entry, routed.permit, latency_s=routed.latency_s, total_s=routed.latency_s)
        route.finished(routed.entry)
    except Exception:  # a bug in the bookkeeping must not cost the caller the answer
        logger.exception("internal error after the answer request_id=%s", route.request_id)
        metrics.INTERNAL_ERRORS.labels(where="success").inc()
    return ChatCompletion(
        text=result.text,
        tool_calls=result.tool_calls,
        finish_reason=result.finish_reason,
        input_tokens=result.input_tokens,
        output_tokens=result.output_tokens,
        model=result.model,
        provider=routed.entry.name,
        route=route.resolved.name,
        attempts=route.attempts,
        failovers=route.failovers,
        request_id=route.request_id,
        upstream_request_id=result.request_id,
        latency_s=routed.latency_s,
        skipped=tuple(route.skipped),
        failures=tuple(route.failures),
    )


def stream(
    messages: Sequence[Message | dict],
    *,
    request_id: str | None = None,
    deadline_s: float | None = None,
    hold_back: bool = False,
    route: str | None = None,
    **options: Any,
) -> "ChatStream":
    """Route until a provider produces its first piece of output (the commit point).

    Before it, every failure fails over invisibly, exactly as `complete()` does,
    and errors are raised from here. After it, a failure of the stream is
    rescued by a provider that can continue the partial answer (see ChatStream),
    or ends it with StreamInterrupted (partial).

    `hold_back` moves the commit point to the end of the answer: each attempt's
    whole stream is read before anything is returned, so a failure anywhere in
    it fails over (or retries) like a request that was never streamed. A route
    may hold back every stream on it (`Route.hold_back`).
    """
    route = _Route(build_request(messages, **options), request_id, deadline_s, route)
    hold_back = hold_back or route.resolved.hold_back
    routed = route.run(_open_held_stream if hold_back else _open_stream)
    return ChatStream(route, routed)


# ---------------------------------------------------------------------------
# Streams
# ---------------------------------------------------------------------------


@dataclass
class _OpenedStream:
    first: StreamDelta
    rest: Iterator[StreamDelta]
    model: str | None
    upstream_request_id: str | None
    # Held back: the time to the first output, which the breaker judges (not the
    # time the whole answer took).
    first_output_s: float | None = None


def _open_stream(adapter: ProviderAdapter, request: ChatRequest, timeout: float) -> _OpenedStream:
    """Read until the first model output; preamble events are held back."""
    deltas = adapter.stream(
        request,
        timeout=timeout,
        first_token_timeout=min(get_setting("STREAM_FIRST_TOKEN_S"), timeout),
        idle_timeout=get_setting("STREAM_IDLE_S"),
        max_duration=get_setting("STREAM_MAX_S"),
    )
    model = upstream_id = None
    for delta in deltas:
        model = delta.model or model
        upstream_id = delta.request_id or upstream_id
        if delta.is_output or (request.continue_final and delta.finish_reason):
            # A continuation may be empty: the cut answer was whole but for its end.
            return _OpenedStream(delta, deltas, model, upstream_id)
    raise ProviderBadResponseError(
        "The stream ended without any output.",
        provider=adapter.config.provider,
        category=Category.MALFORMED_RESPONSE,
    )


def _open_held_stream(
    adapter: ProviderAdapter, request: ChatRequest, timeout: float
) -> _OpenedStream:
    """Read the whole stream before anything reaches the client (hold-back)."""
    clock = get_clock()
    started = clock.monotonic()
    opened = _open_stream(adapter, request, timeout)
    first_output_s = clock.monotonic() - started
    rest = list(opened.rest)  # a failure anywhere is this attempt's failure
    return replace(opened, rest=iter(rest), first_output_s=first_output_s)


class ChatStream:
    """A committed stream: iterate for StreamChunks. `provider`, `attempts`,
    `failovers` and `model` are known before the first chunk is sent.

    Mid-stream rescue: when the stream fails after output was sent, `decide()`
    says whether the answer may be continued (not after a half-sent tool call,
    not after our own maximum duration). If so, the same request plus the text
    already delivered as an assistant prefill goes down the route again, to the
    providers that can continue a partial answer (capability ``prefill``),
    skipping the ones whose stream was cut; only the continuation reaches the
    client. `finished_by` and `continued_from` then name who finished the
    answer and whose streams were cut (docs/engine.md, "Mid-stream rescue").
    """

    def __init__(self, route: "_Route", routed: "_Routed[_OpenedStream]"):
        self._route = route
        self._current = routed
        opened = routed.value
        self.provider = routed.entry.name
        self.model = opened.model or routed.entry.model
        self.upstream_request_id = opened.upstream_request_id
        self.request_id = route.request_id
        self.route = route.resolved.name
        self.attempts = route.attempts
        self.failovers = route.failovers
        self.skipped = tuple(route.skipped)
        self.failures = tuple(route.failures)
        self.finished_by = self.provider
        self.continued_from: list[str] = []
        self._settled = False  # the current provider's permit got its outcome
        self._delivered: list[str] = []
        self._tool_calls_sent = False
        self._trim = ""  # whitespace a continuation may repeat (see held_whitespace)

    def __iter__(self) -> Iterator[StreamChunk]:
        try:
            while True:
                try:
                    yield from self._relay_current()
                    return
                except ProviderError as error:
                    entry, permit = self._current.entry, self._current.permit
                    self._settled = True
                    # Recorded once, whoever finishes the answer. A stream that
                    # reached our maximum duration is healthy: "ignore".
                    breaker_record_failure(entry=entry, permit=permit, error=error)
                    rescue = self._rescue(entry, error)
                    if rescue is None:
                        metrics.REQUESTS.labels(
                            provider=entry.name, outcome="interrupted", route=self.route
                        ).inc()
                        logger.warning(
                            "stream interrupted after output provider=%s category=%s "
                            "request_id=%s", entry.name, error.category, self.request_id,
                        )  # fmt: skip
                        raise StreamInterrupted(error, request_id=self.request_id) from error
                    self._current, self._settled = rescue, False
        finally:
            self._settle(completed=False)

    def _relay_current(self) -> Iterator[StreamChunk]:
        entry, opened = self._current.entry, self._current.value
        for delta in _deltas(opened, entry):
            if delta.skipped_events:
                _report_skipped_events(entry, delta.skipped_events, self.request_id)
            if not (delta.is_output or delta.finish_reason or delta.output_tokens is not None):
                continue
            chunk = _chunk(delta)
            if self._trim and chunk.text:
                chunk = replace(chunk, text=chunk.text.removeprefix(self._trim))
                self._trim = ""
            self._delivered.append(chunk.text)
            self._tool_calls_sent = self._tool_calls_sent or bool(chunk.tool_calls)
            yield chunk
        self._settle(completed=True)

    def _rescue(self, cut: RouteEntry, error: ProviderError) -> "_Routed[_OpenedStream] | None":
        """The next provider's continuation of the partial answer, or None."""
        decision = decide(
            error,
            attempt=1,
            max_attempts=1,
            time_left_s=0.0,
            output_sent=True,
            tool_calls_sent=self._tool_calls_sent,
            failover_on_content_filter=self._route.resolved.failover_on_content_filter,
        )
        if decision.action is not Action.CONTINUE:
            logger.info(
                "stream not continued provider=%s why=%s request_id=%s",
                cut.name, decision.why, self.request_id,
            )  # fmt: skip
            return None
        delivered = "".join(self._delivered)
        route: _Route | None = None
        try:
            route = _Route(
                continuation_request(self._route.request, delivered),
                self.request_id,
                None,
                self._route.route_name,
                exclude=frozenset([*self.continued_from, cut.name]),
                continuation=True,
            )
            routed = route.run(_open_stream)
        except FallbackError as failed:  # nobody capable, or every candidate failed
            logger.warning(
                "stream not continued provider=%s: %s request_id=%s",
                cut.name, failed, self.request_id,
            )  # fmt: skip
            return None
        except Exception:  # a bug of ours: the client still gets the honest cut
            logger.exception("stream rescue failed request_id=%s", self.request_id)
            metrics.INTERNAL_ERRORS.labels(where="rescue").inc()
            return None
        finally:
            self.attempts += route.attempts if route else 0
        self._trim = held_whitespace(delivered)
        self.continued_from.append(cut.name)
        self.finished_by = routed.entry.name
        failover_event_record(
            kind=FailoverEvent.Kind.CONTINUATION,
            provider_id=cut.id,
            to_provider_id=routed.entry.id,
            reason=error.category,
            status_code=error.status_code,
            detail=f"{decision.why}; {len(delivered)} characters delivered; {error.message}",
            request_id=self.request_id,
            route=self.route,
        )
        metrics.CONTINUATIONS.labels(
            from_provider=cut.name, to_provider=routed.entry.name, reason=error.category
        ).inc()
        logger.info(
            "stream continued from=%s to=%s reason=%s delivered_chars=%d request_id=%s",
            cut.name, routed.entry.name, error.category, len(delivered), self.request_id,
        )  # fmt: skip
        return routed

    def _settle(self, *, completed: bool) -> None:
        """Give the current provider's permit its outcome, once."""
        if self._settled:
            return
        self._settled = True
        entry, permit, opened = self._current.entry, self._current.permit, self._current.value
        if completed or _stream_completed(opened):
            # The breaker judges the time to the first output: a long answer is
            # not a slow provider.
            latency = opened.first_output_s or self._current.latency_s
            total = get_clock().monotonic() - self._current.started
            _answered(entry, permit, latency_s=latency, total_s=total)
            self._route.finished(entry)
        else:  # the client went away mid-stream: not the provider's fault
            breaker_release(permit=permit)
        close = getattr(opened.rest, "close", None)
        if close:
            close()

    def close(self) -> None:
        """Abandon the stream before iterating it (returns a probe slot)."""
        if not self._settled:
            self._settled = True
            breaker_release(permit=self._current.permit)
            close = getattr(self._current.value.rest, "close", None)
            if close:
                close()


def _deltas(opened: _OpenedStream, entry: RouteEntry) -> Iterator[StreamDelta]:
    yield opened.first
    yield from _classified(opened.rest, entry)


def _report_skipped_events(entry: RouteEntry, count: int, request_id: str) -> None:
    metrics.SKIPPED_STREAM_EVENTS.labels(provider=entry.name).inc(count)
    logger.warning(
        "stream skipped %d undecodable event(s) provider=%s request_id=%s",
        count, entry.name, request_id,
    )  # fmt: skip


def _classified(deltas: Iterator[StreamDelta], entry: RouteEntry) -> Iterator[StreamDelta]:
    """The adapter's deltas, with anything it raises classified (see `_unexpected`)."""
    try:
        yield from deltas
    except ProviderError:
        raise
    except Exception as exc:
        raise _unexpected(exc, entry) from exc


def _unexpected(exc: Exception, entry: RouteEntry) -> ProviderError:
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


def _answered(entry: RouteEntry, permit: Permit, *, latency_s: float, total_s: float) -> None:
    """Record an answer: time to first output and total time, to the counters the
    dashboard reads and to /metrics, under the same two definitions."""
    breaker_record_success(entry=entry, permit=permit, latency_s=latency_s, total_s=total_s)
    metrics.ANSWER_SECONDS.labels(entry.name).observe(total_s)


def _stream_completed(opened: _OpenedStream) -> bool:
    # A generator that ran to its end has no frame left.
    return getattr(opened.rest, "gi_frame", None) is None


def _chunk(delta: StreamDelta) -> StreamChunk:
    return StreamChunk(
        text=delta.text,
        tool_calls=delta.tool_calls,
        finish_reason=delta.finish_reason,
        input_tokens=delta.input_tokens,
        output_tokens=delta.output_tokens,
    )


# ---------------------------------------------------------------------------
# Routing one request
# ---------------------------------------------------------------------------


@dataclass
class _Routed(Generic[T]):
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


class _ProviderFailed(Exception):
    """One provider failed for this request; `decision` says what happens next."""

    def __init__(self, error: ProviderError, decision: Decision):
        super().__init__(str(error))
        self.error = error
        self.decision = decision


@dataclass
class _Route:
    """One request's walk down the provider list."""

    request: ChatRequest
    request_id: str | None
    deadline_s: float | None
    route_name: str | None = None  # what the caller asked for (see RoutingTable.resolve)
    attempts: int = 0
    failovers: int = 0
    skipped: list[ProviderReason] = field(default_factory=list)
    failures: list[ProviderReason] = field(default_factory=list)
    # A continuation (mid-stream rescue): the providers whose stream was cut are
    # not asked, and a provider's refusal (a 400 to the prefill) moves on to the
    # next capable provider instead of answering the client with it.
    exclude: frozenset[str] = frozenset()
    continuation: bool = False

    def __post_init__(self) -> None:
        self.request_id = self.request_id or uuid.uuid4().hex
        resolved = routing_table().resolve(self.route_name)
        if resolved is None:
            raise RouteNotFound(self.route_name, request_id=self.request_id)
        self.resolved: ResolvedRoute = resolved
        self.deadline = Deadline(
            self.deadline_s or resolved.deadline_s or get_setting("DEADLINE_S")
        )
        self._pending: _PendingFailover | None = None
        self._others_waiting = False
        self._failed_ids: dict[str, int] = {}

    def run(self, call: Callable[[ProviderAdapter, ChatRequest, float], T]) -> _Routed[T]:
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
            try:
                return self._call_provider(entry, permission, call)
            except _ProviderFailed as failed:
                error, decision = failed.error, failed.decision
                if decision.action is Action.STOP and self.continuation:
                    logger.warning(
                        "continuation refused provider=%s category=%s request_id=%s: %s",
                        entry.name, error.category, self.request_id, error.message,
                    )  # fmt: skip
                    continue
                if decision.action is Action.STOP:
                    raise RequestFailed(
                        error, request_id=self.request_id, attempts=self.attempts
                    ) from error
                if decision.only_larger_window:
                    too_small.append((entry.name, entry.context_window))
                    context_error = error
            except FallbackError:
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

    def finished(self, entry: RouteEntry) -> None:
        metrics.REQUESTS.labels(
            provider=entry.name, outcome="success", route=self.resolved.name
        ).inc()

    def _internal_error(self, entry: RouteEntry, exc: Exception, *, where: str) -> None:
        """A bug in the engine's own code while serving one provider: logged with
        its traceback and counted; the request moves on to the next provider (no
        upstream output was sent, so that is safe)."""
        logger.error(
            "internal error in the %s step provider=%s request_id=%s",
            where, entry.name, self.request_id, exc_info=exc,
        )  # fmt: skip
        metrics.INTERNAL_ERRORS.labels(where=where).inc()
        self.failures.append(
            ProviderReason(entry.name, "internal_error", None, f"{type(exc).__name__} (logged)")
        )

    def _call_provider(
        self,
        entry: RouteEntry,
        permit: Permit,
        call: Callable[[ProviderAdapter, ChatRequest, float], T],
    ) -> _Routed[T]:
        clock = get_clock()
        opened = False
        decisions: list[Decision] = []
        budget_allows = retry_budget_check(entry.id, entry.name)

        def judge(error: ProviderError, attempt: int) -> Decision:
            decision = decide(
                error,
                attempt=attempt,
                max_attempts=entry.max_attempts,
                time_left_s=self._provider_time_left(),
                probe=permit.is_probe,
                breaker_opened=opened,
                budget_allows=budget_allows,
                failover_on_content_filter=self.resolved.failover_on_content_filter,
            )
            if decision.cooldown_s:
                breaker_cool_down(provider_id=entry.id, seconds=decision.cooldown_s)
            decisions.append(decision)
            return decision

        started = clock.monotonic()
        try:
            for attempt in retrying_for(provider_name=entry.name, judge=judge):
                with attempt:
                    number = attempt.retry_state.attempt_number
                    counters.count(entry.id, **{"first_attempts" if number == 1 else "retries": 1})
                    self.attempts += 1
                    attempt_started = clock.monotonic()
                    try:
                        value = _call_adapter(
                            entry, call, self.request, self._attempt_timeout(entry)
                        )
                    except ProviderError as error:
                        elapsed = clock.monotonic() - attempt_started
                        metrics.ATTEMPT_LATENCY.labels(entry.name, error.category).observe(elapsed)
                        opened = breaker_record_failure(entry=entry, permit=permit, error=error)
                        raise
                    latency = clock.monotonic() - attempt_started
                    metrics.ATTEMPT_LATENCY.labels(entry.name, "success").observe(latency)
                    return _Routed(entry, permit, value, latency, attempt_started)
        except ProviderError as error:
            decision = decisions[-1]
            retry_at = (
                clock.now() + timedelta(seconds=decision.cooldown_s)
                if decision.cooldown_s
                else None
            )
            self.failures.append(
                ProviderReason(
                    entry.name, error.category, error.status_code, error.message, retry_at
                )
            )
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

    def _provider_time_left(self) -> float:
        return provider_time_left_s(self.deadline.remaining(), others_waiting=self._others_waiting)

    def _attempt_timeout(self, entry: RouteEntry) -> float:
        return attempt_timeout_s(entry.timeout_s, self._provider_time_left())

    def _skip(self, entry: RouteEntry, denial: Denial) -> None:
        """Skipping writes no event: the breaker transition already recorded the outage."""
        self.skipped.append(ProviderReason(entry.name, denial.reason, retry_at=denial.retry_at))
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
        failover_event_record(
            kind=FailoverEvent.Kind.FAILOVER,
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
            reason="all_failed",
            detail="; ".join(f"{r.provider}: {r.reason}" for r in reasons)[:500],
            request_id=self.request_id,
            route=self.resolved.name,
        )
        metrics.REQUESTS.labels(provider="", outcome="all_failed", route=self.resolved.name).inc()
        return AllProvidersFailed(reasons, retry_after_s=retry_after, request_id=self.request_id)


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
    except ProviderError:
        raise
    except Exception as exc:
        raise _unexpected(exc, entry) from exc


# ---------------------------------------------------------------------------
# Health probes
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ProbeOutcome:
    ok: bool
    latency_s: float
    status_code: int | None = None
    category: str = ""
    detail: str = ""
    skipped: str = ""  # why no call was made (cooldown, forced open)


def provider_probe(*, provider_id: int, timeout_s: float | None = None) -> ProbeOutcome:
    """The cheapest realistic call that proves a provider answers.

    It honours cooldown (a rate-limited provider is not poked) and an operator's
    forced-open drain, but not the breaker's admission: an OPEN provider is exactly
    the one worth checking. Results go to HealthCheckResult, never to traffic counters.
    """
    entry = route_entry_for(provider_id)
    now = get_clock().now()
    if entry.cooldown_until and now < entry.cooldown_until:
        return ProbeOutcome(ok=False, latency_s=0.0, skipped=Skip.COOLDOWN)
    if entry.state == BreakerState.State.FORCED_OPEN:
        return ProbeOutcome(ok=False, latency_s=0.0, skipped=Skip.FORCED_OPEN)
    timeout = timeout_s or get_setting("HEALTH_TIMEOUT_S")
    started = get_clock().monotonic()
    try:
        adapter_for_entry(entry).probe(timeout=timeout)
    except ProviderError as error:
        return ProbeOutcome(
            ok=False,
            latency_s=get_clock().monotonic() - started,
            status_code=error.status_code,
            category=error.category,
            detail=error.message,
        )
    return ProbeOutcome(ok=True, latency_s=get_clock().monotonic() - started)
