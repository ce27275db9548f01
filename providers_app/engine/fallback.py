"""The fallback service: the only caller of adapters.

`complete()` and `stream()` read the routing snapshot (one query), then for each
provider in priority order ask the breaker for permission, call the adapter,
record the outcome with the breaker, and then do what `decision.decide()` says:
retry on the same provider, fail over, or stop. Failing over writes one
FailoverEvent; skipping a provider whose breaker is open writes nothing (its
transition was recorded).
"""

import logging
from collections.abc import Sequence
from typing import Any

from ..adapters.base import ChatRequest, ChatResult, Message
from ..adapters.schema import message_from_dict
from . import metrics
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
from .streams import ChatStream, open_held_stream, open_stream

logger = logging.getLogger("providers_app.fallback")


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
    key_name: str = "",
    **options: Any,
) -> ChatCompletion:
    """The first answer any provider of the route can give (`route`: a route's name,
    None or an unknown name: the default route). Raises RouteNotFound,
    AllProvidersFailed or RequestFailed."""
    route = RouteRun(
        build_request(messages, **options), request_id, deadline_s, route, key_name=key_name
    )
    try:
        routed = route.run(
            lambda adapter, request, timeout: adapter.complete(request, timeout=timeout)
        )
    except BaseException:
        route.settle_budgets()
        raise
    result: ChatResult = routed.value
    try:
        record_answer(
            routed.entry, routed.permit, latency_s=routed.latency_s, total_s=routed.latency_s
        )
        route.finished(routed.entry)
        route.bill(
            routed.entry,
            input_tokens=result.input_tokens,
            output_tokens=result.output_tokens,
            cached_input_tokens=result.cached_input_tokens,
            output_text=result.text + "".join(call.arguments for call in result.tool_calls),
        )
        route.settle_budgets()
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
    may hold back every stream on it (`Route.hold_back`).
    """
    route = RouteRun(
        build_request(messages, **options), request_id, deadline_s, route, key_name=key_name
    )
    hold_back = hold_back or route.resolved.hold_back
    try:
        routed = route.run(open_held_stream if hold_back else open_stream)
    except BaseException:
        route.settle_budgets()
        raise
    return ChatStream(route, routed)
