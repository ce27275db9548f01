"""The fallback service: the only caller of adapters.

`complete()` and `stream()` take the route to walk (resolved once, by
`route_for(model)` or the API, from the routing snapshot), then for each
provider in the route's order ask the breaker for permission, call the adapter,
record the outcome with the breaker, and then do what `decision.decide()` says:
retry on the same provider, fail over, or stop. Failing over writes one
FailoverEvent; skipping a provider whose breaker is open writes nothing (its
transition was recorded).
"""

import logging
from collections.abc import Callable, Sequence
from typing import Any

from ..adapters.base import ChatRequest, ChatResult, Message
from ..adapters.cancel import Cancellation, ClientGone  # noqa: F401  (public: see stream())
from ..adapters.schema import message_from_dict
from . import metrics
from .hold_back import hold_back_where_nobody_continues
from .outcomes import (  # noqa: F401  (the engine's public names live here)
    AllProvidersFailed,
    CapabilityMissing,
    ChatCompletion,
    FallbackError,
    NoContinuation,
    ProviderReason,
    RequestFailed,
    RouteNotFound,
    StreamChunk,
    StreamInterrupted,
)
from .probe import ProbeOutcome, provider_probe  # noqa: F401
from .route_run import RouteRun, record_answer
from .routing import ResolvedRoute, routing_table
from .streams import ChatStream, open_held_stream, open_stream, with_cancellation
from .tracing import Outcome, trace_failure

logger = logging.getLogger("providers_app.fallback")


# ---------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------


def build_request(messages: Sequence[Message | dict], **options: Any) -> ChatRequest:
    converted = tuple(m if isinstance(m, Message) else message_from_dict(m) for m in messages)
    if options.get("stop") is not None and not isinstance(options["stop"], tuple):
        options["stop"] = tuple(options["stop"])
    return ChatRequest(messages=converted, **{k: v for k, v in options.items() if v is not None})


def route_for(model: str | None, *, request_id: str | None = None) -> ResolvedRoute:
    """The route a `model` names (a route's name; None or an unknown name: the
    default route), from this process's routing snapshot. Raises RouteNotFound."""
    route = routing_table().resolve(model)
    if route is None:
        raise RouteNotFound(model, request_id=request_id)
    return route


def complete(
    messages: Sequence[Message | dict],
    *,
    request_id: str | None = None,
    deadline_s: float | None = None,
    route: ResolvedRoute | None = None,
    model: str | None = None,
    key_name: str = "",
    **options: Any,
) -> ChatCompletion:
    """The first answer any provider of the route can give. `route`: the route to
    walk, resolved already (the API's); else `model` is resolved (`route_for`).
    `key_name`: the client key's, for usage and budgets. Raises RouteNotFound,
    BudgetExceeded, AllProvidersFailed or RequestFailed."""
    route = route or route_for(model, request_id=request_id)
    run = RouteRun(
        build_request(messages, **options), request_id, deadline_s, route, key_name=key_name
    )
    try:
        with trace_failure(run.trace):
            routed = run.run(
                lambda adapter, request, timeout: adapter.complete(request, timeout=timeout)
            )
    except BaseException:
        run.settle_budgets()
        raise
    result: ChatResult = routed.value
    try:
        record_answer(
            routed.entry, routed.permit, latency_s=routed.latency_s, total_s=routed.latency_s
        )
        run.finished(routed.entry)
        run.trace.finish(Outcome.ANSWERED, provider=routed.entry.name)
        run.bill(
            routed.entry,
            input_tokens=result.input_tokens,
            output_tokens=result.output_tokens,
            cached_input_tokens=result.cached_input_tokens,
            output_text=result.text + "".join(call.arguments for call in result.tool_calls),
        )
        run.settle_budgets()
    except Exception:  # a bug in the bookkeeping must not cost the caller the answer
        logger.exception("internal error after the answer request_id=%s", run.request_id)
        metrics.INTERNAL_ERRORS.labels(where="success").inc()
    return ChatCompletion(
        text=result.text,
        tool_calls=result.tool_calls,
        finish_reason=result.finish_reason,
        input_tokens=result.input_tokens,
        output_tokens=result.output_tokens,
        model=result.model,
        provider=routed.entry.name,
        route=route.name,
        attempts=run.attempts,
        failovers=run.failovers,
        request_id=run.request_id,
        upstream_request_id=result.request_id,
        latency_s=routed.latency_s,
        skipped=tuple(run.skipped),
        failures=tuple(run.failures),
    )


def stream(
    messages: Sequence[Message | dict],
    *,
    request_id: str | None = None,
    deadline_s: float | None = None,
    hold_back: bool = False,
    route: ResolvedRoute | None = None,
    model: str | None = None,
    cancellation: Cancellation | None = None,
    on_attempt: Callable[[str], None] | None = None,
    key_name: str = "",
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
    may hold back every stream on it (`Route.hold_back`), or only the streams
    no provider behind could continue (`Route.auto_hold_back`, engine/hold_back.py).
    `route` and `model` as for `complete()`.

    `cancellation` (set when the client hangs up) stops the upstream read at
    once, held back or not; `ClientGone` is raised instead of an answer.

    `on_attempt(provider name)` is called as each provider's turn starts, before
    the commit point (the chat page's "waiting for secondary").
    """
    route = route or route_for(model, request_id=request_id)
    run = RouteRun(
        build_request(messages, **options),
        request_id,
        deadline_s,
        route,
        on_attempt=on_attempt,
        key_name=key_name,
    )
    run.trace.streamed = True
    hold_back = hold_back or route.hold_back
    opener = open_held_stream if hold_back else open_stream
    if not hold_back and route.auto_hold_back:
        opener = hold_back_where_nobody_continues(route.entries)
    try:
        with trace_failure(run.trace):
            routed = run.run(with_cancellation(opener, cancellation))
    except BaseException:
        run.settle_budgets()
        raise
    return ChatStream(run, routed, cancellation)
