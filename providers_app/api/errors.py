"""API errors in OpenAI's shape, and how engine outcomes become HTTP statuses.

Every error body is ``{"error": {"type", "message", "param", "code"}}`` so that
OpenAI client libraries raise their usual exception classes (they choose the
class by status code and read ``message``/``code`` from the body).
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse

from ..adapters.errors import Category
from ..engine.budgets import BudgetExceeded
from ..engine.fallback import (
    AllProvidersFailed,
    CapabilityMissing,
    FallbackError,
    RequestFailed,
    RouteNotFound,
    StreamInterrupted,
)

logger = logging.getLogger("providers_app.api")

INVALID_REQUEST = "invalid_request_error"


class ApiError(Exception):
    """An error the API answers with; raise it anywhere below a view."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        error_type: str = INVALID_REQUEST,
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = error_type
        self.param = param
        self.code = code
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "type": self.type,
                "message": self.message,
                "param": self.param,
                "code": self.code,
                **self.extra,
            }
        }

    def response(self) -> JsonResponse:
        response = JsonResponse(self.body(), status=self.status)
        for name, value in self.headers.items():
            response[name] = value
        return response


def bad_request(message: str, *, param: str | None, code: str | None = None) -> ApiError:
    """A malformed request (400), naming the offending field in ``param``."""
    return ApiError(400, message, param=param, code=code)


# ---------------------------------------------------------------------------
# Engine outcomes
# ---------------------------------------------------------------------------

# RequestFailed category -> (status, type, code). For the fail-fast categories the
# type repeats the code, so a client that tests either field recognises it (OpenAI
# itself sends code "context_length_exceeded").
_REQUEST_FAILED: dict[str, tuple[int, str, str | None]] = {
    Category.INVALID_REQUEST: (400, INVALID_REQUEST, "upstream_invalid_request"),
    Category.CONTEXT_LENGTH: (400, "context_length_exceeded", "context_length_exceeded"),
    Category.CONTENT_FILTER: (400, "content_filter", "content_filter"),
    Category.REQUEST_TOO_LARGE: (413, "request_too_large", "request_too_large"),
    # The client's misfits (DESIGN §4): no provider is at fault, so no 5xx.
    Category.RESPONSE_FORMAT_UNMET: (422, INVALID_REQUEST, "response_format_unmet"),
    Category.OUTPUT_TOO_SLOW: (422, INVALID_REQUEST, "output_too_slow"),
}
_PARAM_OF: dict[str, str] = {
    Category.RESPONSE_FORMAT_UNMET: "response_format",
    Category.OUTPUT_TOO_SLOW: "max_tokens",
    Category.CONTEXT_LENGTH: "messages",
    Category.CONTENT_FILTER: "messages",
    Category.REQUEST_TOO_LARGE: "messages",
}


def api_error_for(error: FallbackError) -> ApiError:
    """The HTTP answer to an engine failure raised before any output was sent; it
    carries the request id (X-Request-Id), which finds the request's trace."""
    api_error = _api_error_for(error)
    api_error.headers.setdefault("X-Request-Id", error.request_id)
    return api_error


def _api_error_for(error: FallbackError) -> ApiError:
    if isinstance(error, AllProvidersFailed):
        return _all_failed(error)
    if isinstance(error, RequestFailed):
        return _request_failed(error)
    if isinstance(error, CapabilityMissing):
        return _capability_missing(error)
    if isinstance(error, RouteNotFound):
        return model_not_found(error.name)
    if isinstance(error, BudgetExceeded):
        return budget_exceeded(error)
    # StreamInterrupted is only raised while iterating, never before output.
    logger.error("unexpected engine error %r request_id=%s", error, error.request_id)
    return ApiError(502, "The upstream failed.", error_type="upstream_error", code="upstream_error")


def budget_exceeded(error: BudgetExceeded) -> ApiError:
    """A key's or route's budget is used up (engine/budgets.py): OpenAI's 429 shape,
    naming the limit, with the seconds until its window ends."""
    budget = error.budget
    tokens = error.kind_name == "tokens_per_minute"
    return ApiError(
        429,
        str(error),
        error_type="rate_limit_exceeded" if tokens else "insufficient_quota",
        code=f"{error.kind_name}_limit_exceeded",
        headers={"Retry-After": str(error.retry_after_s)},
        extra={
            "limit": error.kind_name,
            "maximum": error.maximum,
            "scope": budget.scope,
            "name": budget.name,
        },
    )


def model_not_found(name: str | None) -> ApiError:
    """OpenAI's answer to an unknown model: no route has the name and none is the default."""
    return ApiError(
        404,
        f"The model {name!r} does not exist: no route has that name and no route is the "
        "default. GET /v1/models lists the routes.",
        param="model",
        code="model_not_found",
    )


def route_not_allowed(name: str) -> ApiError:
    """The key is limited to other routes (ClientKey.routes)."""
    return ApiError(
        403,
        f"This API key may not use the route {name!r}.",
        error_type="permission_error",
        param="model",
        code="route_not_allowed",
        extra={"route": name},
    )


# The request field that needs each capability (or wire limit).
_CAPABILITY_PARAM: dict[str, str] = {
    "tools": "tools",
    "structured_output": "response_format",
    "images": "messages",
    "parallel_tool_calls": "parallel_tool_calls",
    "tools_with_response_format": "response_format",
    "tool_choice": "tool_choice",
    "tool_name": "tools",
    "image_url": "messages",
}


def _capability_missing(error: CapabilityMissing) -> ApiError:
    """Nothing was sent anywhere: no provider could take the request whole."""
    capability = error.capability
    return ApiError(
        400,
        f"No enabled provider supports {capability}; the request was not sent to any "
        "provider, and no part of it is dropped silently.",
        param=_CAPABILITY_PARAM.get(capability, capability),
        code="capability_unavailable",
        extra={"capability": capability, "request_id": error.request_id},
    )


def _all_failed(error: AllProvidersFailed) -> ApiError:
    # Only the provider name, the category and the upstream status: the detail
    # text may name internal hosts, and operators have it in the event log.
    providers = [
        {
            "provider": reason.provider,
            "reason": str(reason.reason),
            "status_code": reason.status_code,
            "retry_at": reason.retry_at.isoformat() if reason.retry_at else None,
        }
        for reason in error.reasons
    ]
    summary = "; ".join(f"{p['provider']}: {p['reason']}" for p in providers)
    message = (
        f"Every provider failed ({summary})." if providers else "No provider is enabled."
    ) + f" Retry after {error.retry_after_s} s."
    return ApiError(
        503,
        message,
        error_type="all_providers_failed",
        code="all_providers_failed",
        headers={"Retry-After": str(error.retry_after_s)},
        extra={"providers": providers, "request_id": error.request_id},
    )


def _request_failed(error: RequestFailed) -> ApiError:
    status, type_, code = _REQUEST_FAILED.get(
        error.category, (502, "upstream_error", str(error.category))
    )
    # The upstream message is about the caller's own request and already scrubbed
    # of secrets by the adapter; it is what the caller needs to fix it.
    message = (
        error.error.message
        if error.error.policy.client_misfit
        else f"{error.provider} refused the request ({error.category}): {error.error.message}"
    )
    return ApiError(
        status,
        message,
        error_type=type_,
        code=code,
        param=_PARAM_OF.get(error.category),
        extra={"provider": error.provider, "request_id": error.request_id},
    )


def stream_error_payload(error: BaseException, *, provider: str) -> dict[str, Any]:
    """The last event of a stream that failed after output: marked partial."""
    if isinstance(error, StreamInterrupted):
        message = f"The stream from {error.provider} was interrupted ({error.category})."
        code = str(error.category)
        provider = error.provider
    else:  # a bug of ours mid-stream: say nothing about it beyond its existence
        message, code = "The stream failed.", "internal_error"
    return {
        "error": {
            "type": "stream_interrupted",
            "message": message,
            "param": None,
            "code": code,
            "partial": True,
            "provider": provider,
        }
    }


# ---------------------------------------------------------------------------
# View decorator
# ---------------------------------------------------------------------------

View = Callable[..., HttpResponse]


def json_errors(*methods: str) -> Callable[[View], View]:
    """Answer a wrong method with a JSON 405, an ApiError with its own response and
    anything unexpected with a JSON 500, so a client never parses an HTML page."""
    allowed = frozenset(m.upper() for m in methods) | ({"HEAD"} if "GET" in methods else set())

    def decorator(view: View) -> View:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method not in allowed:
                error = ApiError(
                    405,
                    f"Method {request.method} is not allowed here; use {', '.join(methods)}.",
                    code="method_not_allowed",
                    headers={"Allow": ", ".join(sorted(allowed))},
                )
                return error.response()
            try:
                return view(request, *args, **kwargs)
            except ApiError as error:
                return error.response()
            except DatabaseError:
                logger.exception("database unavailable while serving %s", request.path)
                return ApiError(
                    503,
                    "The service cannot reach its database; try again shortly.",
                    error_type="service_unavailable",
                    code="database_unavailable",
                    headers={"Retry-After": "1"},
                ).response()
            except Exception:
                # A bug of ours: never an HTML page; the request id ties the
                # client's report to the traceback in the log.
                request_id = getattr(request, "fallback_request_id", None) or uuid.uuid4().hex
                logger.exception(
                    "unexpected error while serving %s request_id=%s", request.path, request_id
                )
                return ApiError(
                    500,
                    f"Internal error (request {request_id}).",
                    error_type="internal_error",
                    code="internal_error",
                    headers={"X-Request-Id": request_id},
                    extra={"request_id": request_id},
                ).response()

        return wrapper

    return decorator
