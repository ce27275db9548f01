"""Streams: opening one up to its first output, and the committed ChatStream that
relays it, rescued mid-answer by a provider that can continue it."""

import functools
import logging
from collections.abc import Iterator
from dataclasses import dataclass, replace

from ..adapters.base import ChatRequest, ProviderAdapter, StreamDelta
from ..adapters.cancel import Cancellation, ClientGone
from ..adapters.errors import Category, ProviderBadResponseError, ProviderError
from ..conf import get_setting
from ..models import FailoverEvent
from ..selectors import RouteEntry
from . import counters, metrics
from .breaker import (
    breaker_record_failure,
    breaker_release,
)
from .clock import get_clock
from .continuation import continuation_request, held_whitespace, spliced
from .decision import (
    Action,
    decide,
)
from .events import failover_event_record
from .outcomes import FallbackError, StreamChunk, StreamInterrupted
from .route_run import Routed, RouteRun, record_answer, unexpected_failure
from .tracing import Outcome

logger = logging.getLogger("providers_app.fallback")


# ---------------------------------------------------------------------------
# Streams
# ---------------------------------------------------------------------------


@dataclass
class OpenedStream:
    first: StreamDelta
    rest: Iterator[StreamDelta]
    model: str | None
    upstream_request_id: str | None
    # Held back: the time to the first output, which the breaker judges (not the
    # time the whole answer took).
    first_output_s: float | None = None


def open_stream(
    adapter: ProviderAdapter,
    request: ChatRequest,
    timeout: float,
    cancellation: Cancellation | None = None,
) -> OpenedStream:
    """Read until the first model output; preamble events are held back.
    `cancellation` (the client hung up) stops the upstream read at once."""
    deltas = adapter.stream(
        request,
        timeout=timeout,
        first_token_timeout=min(get_setting("STREAM_FIRST_TOKEN_S"), timeout),
        idle_timeout=get_setting("STREAM_IDLE_S"),
        max_duration=get_setting("STREAM_MAX_S"),
        max_event_bytes=get_setting("STREAM_MAX_EVENT_BYTES"),
        max_text_bytes=get_setting("STREAM_MAX_TEXT_BYTES"),
        cancellation=cancellation,
    )
    if request.continue_final:  # an echo is cut, a restarted answer refused
        deltas = spliced(
            deltas,
            request.prefill_text or "",
            provider=adapter.config.provider,
            dialect=adapter.config.continuation,
        )
    model = upstream_id = None
    for delta in deltas:
        model = delta.model or model
        upstream_id = delta.request_id or upstream_id
        if delta.is_output or (request.continue_final and delta.finish_reason):
            # A continuation may be empty: the cut answer was whole but for its end.
            return OpenedStream(delta, deltas, model, upstream_id)
    raise ProviderBadResponseError(
        "The stream ended without any output.",
        provider=adapter.config.provider,
        category=Category.MALFORMED_RESPONSE,
    )


def open_held_stream(
    adapter: ProviderAdapter,
    request: ChatRequest,
    timeout: float,
    cancellation: Cancellation | None = None,
) -> OpenedStream:
    """Read the whole stream before anything reaches the client (hold-back)."""
    clock = get_clock()
    started = clock.monotonic()
    opened = open_stream(adapter, request, timeout, cancellation)
    first_output_s = clock.monotonic() - started
    rest = list(opened.rest)  # a failure anywhere is this attempt's failure
    return replace(opened, rest=iter(rest), first_output_s=first_output_s)


def with_cancellation(opener, cancellation: Cancellation | None):
    """`opener` bound to the request's hang-up `cancellation`, when it has one."""
    if cancellation is None:
        return opener
    return functools.partial(opener, cancellation=cancellation)


# The route's judgement of a timeout depends on it (decision.client_misfit).
open_stream.streams = True  # type: ignore[attr-defined]
open_held_stream.streams = True  # type: ignore[attr-defined]


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

    def __init__(
        self,
        route: "RouteRun",
        routed: "Routed[OpenedStream]",
        cancellation: Cancellation | None = None,
    ):
        self._route = route
        self._cancellation = cancellation
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
        self._meter = _Meter()  # the current attempt's usage, billed when it ends

    def __iter__(self) -> Iterator[StreamChunk]:
        try:
            while True:
                try:
                    yield from self._relay_current()
                    return
                except ClientGone:  # the client hung up: not the provider's outcome
                    self._settled = True
                    breaker_release(permit=self._current.permit)
                    raise
                except ProviderError as error:
                    entry, permit = self._current.entry, self._current.permit
                    self._settled = True
                    self._meter.add_reported(error)  # what the decoder had seen
                    self._meter.bill(self._route, entry, failed_attempt=True)
                    # Recorded once, whoever finishes the answer. A stream that
                    # reached our maximum duration is healthy: "ignore".
                    breaker_record_failure(entry=entry, permit=permit, error=error)
                    rescue = self._rescue(entry, error)
                    if rescue is None:
                        self._record_interruption(entry, error)
                        self._route.trace.finish(
                            Outcome.INTERRUPTED, provider=entry.name, reason=error.category
                        )
                        metrics.REQUESTS.labels(
                            provider=entry.name, outcome="interrupted", route=self.route
                        ).inc()
                        counters.count(entry.id, interrupted=1)
                        logger.warning(
                            "stream interrupted after output provider=%s category=%s "
                            "request_id=%s", entry.name, error.category, self.request_id,
                        )  # fmt: skip
                        raise StreamInterrupted(error, request_id=self.request_id) from error
                    self._current, self._settled = rescue, False
                    self._meter = _Meter()
        finally:
            self._settle(completed=False)
            self._route.settle_budgets()

    def _relay_current(self) -> Iterator[StreamChunk]:
        entry, opened = self._current.entry, self._current.value
        for delta in _deltas(opened, entry):
            self._meter.add(delta)
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

    def _rescue(self, cut: RouteEntry, error: ProviderError) -> "Routed[OpenedStream] | None":
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
        self._route.trace.stream_cut(cut.name, error, decision)
        self._route.apply(cut, error, decision)
        if decision.action is not Action.CONTINUE:
            logger.info(
                "stream not continued provider=%s why=%s request_id=%s",
                cut.name, decision.why, self.request_id,
            )  # fmt: skip
            return None
        delivered = "".join(self._delivered)
        route: RouteRun | None = None
        try:
            route = RouteRun(
                continuation_request(self._route.request, delivered),
                self.request_id,
                None,
                self._route.resolved,  # the same route: one request, one route
                exclude=frozenset([*self.continued_from, cut.name]),
                continuation=True,
                trace=self._route.trace,
                key_name=self._route.key_name,
                admission=self._route.admission,
            )
            routed = route.run(with_cancellation(open_stream, self._cancellation))
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
            delivered_chars=len(delivered),
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

    def _record_interruption(self, cut: RouteEntry, error: ProviderError) -> None:
        """The history of a cut nobody continued (a continued one is a `continuation`)."""
        delivered = sum(len(text) for text in self._delivered)
        failover_event_record(
            kind=FailoverEvent.Kind.STREAM_INTERRUPTED,
            provider_id=cut.id,
            reason=error.category,
            status_code=error.status_code,
            detail=f"{delivered} characters delivered; not continued; {error.message}",
            delivered_chars=delivered,
            request_id=self.request_id,
            route=self.route,
        )

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
            record_answer(entry, permit, latency_s=latency, total_s=total)
            self._route.finished(entry, rescued=bool(self.continued_from))
            self._route.trace.finish(Outcome.ANSWERED, provider=entry.name)
            self._meter.bill(self._route, entry, failed_attempt=False)
        else:  # the client went away mid-stream: not the provider's fault
            breaker_release(permit=permit)
            self._route.trace.finish(Outcome.ABANDONED, provider=entry.name)
            self._meter.bill(self._route, entry, failed_attempt=True)  # billed all the same
        close = getattr(opened.rest, "close", None)
        if close:
            close()

    def close(self) -> None:
        """Abandon the stream before iterating it (returns a probe slot)."""
        if not self._settled:
            self._settled = True
            breaker_release(permit=self._current.permit)
            self._route.trace.finish(Outcome.ABANDONED, provider=self._current.entry.name)
            close = getattr(self._current.value.rest, "close", None)
            if close:
                close()
        self._route.settle_budgets()


class _Meter:
    """The usage one streamed attempt reported, and its output for an estimate."""

    def __init__(self) -> None:
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.cached_input_tokens: int | None = None
        self.output: list[str] = []

    def add(self, delta: StreamDelta) -> None:
        if delta.text:
            self.output.append(delta.text)
        for piece in delta.tool_calls:
            self.output.append(piece.arguments)
        if delta.input_tokens is not None:
            self.input_tokens = delta.input_tokens
        if delta.output_tokens is not None:
            self.output_tokens = delta.output_tokens
        if delta.cached_input_tokens is not None:
            self.cached_input_tokens = delta.cached_input_tokens

    def add_reported(self, error: ProviderError) -> None:
        """A cut stream's error carries the counts its decoder saw before the cut."""
        for name in ("input_tokens", "output_tokens", "cached_input_tokens"):
            value = getattr(error, name, None)
            if value is not None:
                setattr(self, name, value)

    def bill(self, route: "RouteRun", entry: RouteEntry, *, failed_attempt: bool) -> None:
        route.bill(
            entry,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cached_input_tokens=self.cached_input_tokens,
            output_text="".join(self.output),
            failed_attempt=failed_attempt,
        )


def _deltas(opened: OpenedStream, entry: RouteEntry) -> Iterator[StreamDelta]:
    yield opened.first
    yield from _classified(opened.rest, entry)


def _report_skipped_events(entry: RouteEntry, count: int, request_id: str) -> None:
    metrics.SKIPPED_STREAM_EVENTS.labels(provider=entry.name).inc(count)
    logger.warning(
        "stream skipped %d undecodable event(s) provider=%s request_id=%s",
        count, entry.name, request_id,
    )  # fmt: skip


def _classified(deltas: Iterator[StreamDelta], entry: RouteEntry) -> Iterator[StreamDelta]:
    """The adapter's deltas, with anything it raises classified (see `unexpected_failure`)."""
    try:
        yield from deltas
    except (ProviderError, ClientGone):
        raise
    except Exception as exc:
        raise unexpected_failure(exc, entry) from exc


def _stream_completed(opened: OpenedStream) -> bool:
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
