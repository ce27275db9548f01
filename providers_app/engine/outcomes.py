"""What the engine hands back: answers, stream chunks, and the errors a caller can get."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from ..adapters.errors import ProviderError
from ..adapters.schema import ToolCall, ToolCallDelta

# ---------------------------------------------------------------------------
# What callers get back
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ProviderReason:
    """Why one provider did not answer: skipped (breaker) or failed (an error)."""

    provider: str
    reason: str  # a providers_app.reasons.Reason value (a Category is one too)
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
