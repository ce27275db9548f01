"""Request traces: one request's route and each step of its walk (docs/engine.md, "Traces").

`RouteRun` carries a `TraceRecorder` and tells it what happens: a provider
skipped, an attempt started, failed (with the decision taken and why: retry,
fail over, continue or stop) or answered (with its time to first output), a
stream cut. The caller finishes it with the request's outcome.

Writes stay off the happy path: a request answered at the first try is kept
only at FALLBACK_TRACE_SAMPLE_RATE, and then buffered and written in batches:
in a serving process by the counters' timer thread every
FALLBACK_COUNTER_FLUSH_S (never by a request, unless the buffer reaches
MEMORY_CAP), elsewhere by the request that finds a flush due, and at exit.
Anything else (a retry, a failover, a failure, an interrupted stream) is
always kept and written at once, as its event is; but a failure that called
no provider (every breaker open) is buffered too, as its coalesced all_failed
event is (an outage must not become a write storm).
Writing a trace never fails a request: a database error is logged and counted.
"""

import atexit
import logging
import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

from django.db import DatabaseError, transaction

from ..adapters.errors import ProviderError
from ..conf import get_setting
from ..models import RequestTrace
from ..reasons import Reason
from . import counters, metrics
from .clock import get_clock
from .decision import Action, Decision
from .outcomes import AllProvidersFailed, FallbackError

logger = logging.getLogger("providers_app.tracing")

Outcome = RequestTrace.Outcome
SUCCESS, FAILURE, SKIPPED, INTERRUPTED = "success", "failure", "skipped", "interrupted"
ANSWER, SKIP = "answer", "skip"  # the step's action when no Decision was taken
BATCH = 200  # a buffer this long is written at once, whatever the time
# In a serving process the counters' timer thread writes the buffer; a request
# writes it only if it grew this long (a stalled timer must not cost memory).
MEMORY_CAP = 5000

_random = random.Random()


@dataclass(slots=True)
class Step:
    """One provider skipped, or one attempt on one provider."""

    provider: str
    started_ms: float
    duration_ms: float | None = None
    ttft_ms: float | None = None
    outcome: str = ""
    reason: str = ""  # a providers_app.reasons.Reason value
    status: int | None = None
    action: str = ""  # retry, fail_over, continue, stop (decision.Action), answer, skip
    why: str = ""


class TraceRecorder:
    """What one request did, step by step; `finish()` keeps (or drops) it."""

    __slots__ = ("_at", "_clock", "_done", "_t0", "request_id", "route", "steps", "streamed")

    def __init__(self, request_id: str, *, streamed: bool = False):
        self._clock = get_clock()
        self._t0 = self._clock.monotonic()
        self._at = self._clock.now()
        self._done = False
        self.request_id = request_id
        self.route = ""
        self.streamed = streamed
        self.steps: list[Step] = []

    def _ms(self) -> float:
        return (self._clock.monotonic() - self._t0) * 1000

    # -- what RouteRun tells it ---------------------------------------------------

    def skipped(self, provider: str, reason: str) -> None:
        now = self._ms()
        self.steps.append(Step(provider, now, 0.0, None, SKIPPED, reason, None, SKIP))

    def attempt_started(self, provider: str) -> Step:
        step = Step(provider, self._ms())
        self.steps.append(step)
        return step

    def attempt_failed(self, step: Step, error: ProviderError) -> None:
        step.duration_ms = self._ms() - step.started_ms
        step.outcome, step.reason, step.status = FAILURE, error.category, error.status_code

    def decided(self, decision: Decision) -> None:
        """The decision taken after the latest failed attempt, and why."""
        for step in reversed(self.steps):
            if step.outcome == FAILURE:
                step.action, step.why = decision.action, decision.why
                return

    def attempt_answered(self, step: Step, *, first_output_s: float | None) -> None:
        step.duration_ms = self._ms() - step.started_ms
        step.ttft_ms = first_output_s * 1000 if first_output_s is not None else None
        step.outcome, step.action = SUCCESS, ANSWER

    def stream_cut(self, provider: str, error: ProviderError, decision: Decision) -> None:
        """The committed stream of `provider` failed after output was sent."""
        step = self._answering(provider)
        if step is None:
            return
        step.duration_ms = self._ms() - step.started_ms
        step.outcome, step.reason, step.status = INTERRUPTED, error.category, error.status_code
        step.action, step.why = decision.action, decision.why

    def internal_error(self, provider: str, reason: str) -> None:
        self.steps.append(Step(provider, self._ms(), 0.0, None, FAILURE, reason, None, "fail_over"))

    # -- the outcome ------------------------------------------------------------------

    def finish(self, outcome: str, *, provider: str = "", reason: str = "") -> None:
        """The request is over: keep the trace (failures at once, a sample of the
        answers at the first try in the buffer) or drop it. Only the first call counts."""
        if self._done:
            return
        self._done = True
        try:
            self._keep(outcome, provider, reason)
        except Exception:  # a bug in tracing must never cost the caller the answer
            logger.exception("trace not kept request_id=%s", self.request_id)
            metrics.INTERNAL_ERRORS.labels(where="trace").inc()

    def _keep(self, outcome: str, provider: str, reason: str) -> None:
        if outcome == Outcome.ANSWERED:
            step = self._answering(provider)
            if step is not None and self.streamed:
                step.duration_ms = self._ms() - step.started_ms  # to the stream's end
        plain = outcome == Outcome.ANSWERED and all(
            s.outcome in (SUCCESS, SKIPPED) for s in self.steps
        )
        if plain and _random.random() >= get_setting("TRACE_SAMPLE_RATE"):
            return
        row = (self, outcome, provider, reason, plain)
        # A request that made no call (every breaker open) is refused in
        # microseconds, thousands a second in an outage: buffered like an answer,
        # as its all_failed event is coalesced. One that called a provider is
        # written now, with its failover event.
        if plain or not any(s.outcome in (FAILURE, INTERRUPTED) for s in self.steps):
            trace_buffer.add(row)
        else:
            trace_buffer.write([row])

    def _answering(self, provider: str) -> Step | None:
        for step in reversed(self.steps):
            if step.provider == provider and step.outcome == SUCCESS:
                return step
        return None


def _trace_row(recorder: TraceRecorder, outcome: str, provider: str, reason: str, sampled: bool):
    steps = recorder.steps
    return RequestTrace(
        created_at=recorder._at,
        request_id=recorder.request_id[:64],
        route=recorder.route[:100],
        streamed=recorder.streamed,
        outcome=outcome,
        provider=provider[:100],
        reason=reason[:64],
        attempt_count=sum(1 for s in steps if s.outcome != SKIPPED),
        failovers=sum(1 for s in steps if s.action == Action.FAIL_OVER),
        duration_ms=(recorder._clock.monotonic() - recorder._t0) * 1000,
        sampled=sampled,
        steps=[asdict(s) for s in steps],
    )


class _TraceBuffer:
    """Sampled traces of this process, written in batches (see the module's doc)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[RequestTrace] = []
        self._last_write: float | None = None

    def add(self, row: tuple) -> None:
        trace = _trace_row(*row)  # the duration is the request's, not the buffer's
        now = get_clock().monotonic()
        with self._lock:
            self._pending.append(trace)
            if self._last_write is None:
                self._last_write = now
            if counters.flushing_in_background():
                due = len(self._pending) >= MEMORY_CAP
            else:
                flush_s = get_setting("COUNTER_FLUSH_S")
                due = len(self._pending) >= BATCH or now - self._last_write >= flush_s
        if due:
            self.flush()

    def write(self, rows: list[tuple]) -> None:
        self._save([_trace_row(*row) for row in rows])

    def flush(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, []
            self._last_write = get_clock().monotonic()
        if batch:
            self._save(batch)

    def discard(self) -> None:
        with self._lock:
            self._pending, self._last_write = [], None

    @staticmethod
    def _save(traces: list[RequestTrace]) -> None:
        try:
            with transaction.atomic():  # a savepoint: never poison the caller's transaction
                RequestTrace.objects.bulk_create(traces)
        except DatabaseError:
            logger.exception("could not write %d trace(s)", len(traces))
            metrics.store_error("trace_write")


trace_buffer = _TraceBuffer()


def flush_traces() -> None:
    """Write the buffered sampled traces now (the counters' timer thread, exit, tests)."""
    trace_buffer.flush()


def _flush_at_exit() -> None:
    try:
        trace_buffer.flush()
    except Exception:  # the interpreter is going away; nothing to report to
        logger.debug("trace flush at exit failed", exc_info=True)


atexit.register(_flush_at_exit)


@contextmanager
def trace_failure(recorder: TraceRecorder) -> Iterator[None]:
    """A request the route could not serve finishes its trace as failed."""
    try:
        yield
    except FallbackError as failed:
        recorder.finish(Outcome.FAILED, reason=_failure_reason(failed))
        raise


def _failure_reason(failed: FallbackError) -> str:
    if isinstance(failed, AllProvidersFailed):
        return Reason.ALL_FAILED
    return getattr(failed, "category", "") or ""


def first_output_s(value: object, latency_s: float) -> float | None:
    """An attempt's time to first output: a held stream measured it; an opened
    stream returned at it; a whole completion has none apart from its latency."""
    held = getattr(value, "first_output_s", None)
    if held is not None:
        return held
    return latency_s if hasattr(value, "first") else None
