"""The OpenAI-compatible API and the status endpoint: parse, call the engine, render.

Bearer-authenticated, so CSRF-exempt: a browser cannot attach the key on its own.
"""

from __future__ import annotations

import uuid

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from ..conf import get_setting
from ..engine import fallback
from ..engine.clock import get_clock
from ..engine.routing import routing_table
from ..selectors.providers import STATUS_WINDOW, provider_status_list
from .auth import (
    allowed_route_names,
    require_client_key,
    require_route_allowed,
    require_staff_or_client_key,
)
from .errors import ApiError, api_error_for, json_errors, model_not_found
from .hangup import HangupWatch
from .limits import hold_key_limits, key_limits_held
from .parsing import load_json_object, parse_chat_request, read_body, request_id_from
from .rendering import completion_body, fallback_headers, model_list_body, status_body
from .streaming import openai_sse, streaming_response


@csrf_exempt
@json_errors("POST")
@key_limits_held
def chat_completions(request: HttpRequest) -> HttpResponse:
    """POST /v1/chat/completions: one answer, or an SSE stream of chunks."""
    key = require_client_key(request)
    hold_key_limits(request, key)  # 429 over the key's fairness limits
    body = read_body(request, limit=get_setting("MAX_REQUEST_BYTES"))
    chat = parse_chat_request(load_json_object(body))
    # `model` names a route (or falls to the default route): docs/clients.md §3.
    route = routing_table().resolve(chat.model)
    if route is None:
        raise model_not_found(chat.model)
    require_route_allowed(key, route.name)
    options = chat.engine_options()
    options["route"] = route  # resolved once, here: the engine walks this very route
    options["key_name"] = key.name
    watch = None
    if chat.stream:
        call, options["hold_back"] = fallback.stream, chat.hold_back
        watch = HangupWatch(request.META)  # stops the upstream read when the client goes
        options["cancellation"] = watch.cancellation
    else:
        call = fallback.complete
    # Known before the engine runs, so that even a bug of ours answers with it.
    request.fallback_request_id = request_id_from(request) or uuid.uuid4().hex
    outcome = None
    try:
        outcome = call(chat.messages, request_id=request.fallback_request_id, **options)
    except fallback.FallbackError as error:
        raise api_error_for(error) from error
    except fallback.ClientGone:
        return HttpResponse(status=499)  # nginx's "client closed request": nobody reads it
    finally:
        if watch is not None and not isinstance(outcome, fallback.ChatStream):
            watch.stop()  # else the stream's body stops it when it closes
    if isinstance(outcome, fallback.ChatStream):
        return streaming_response(
            outcome,
            openai_sse(outcome, include_usage=chat.include_usage),
            content_type="text/event-stream; charset=utf-8",
            on_close=watch.stop if watch else None,
        )
    response = JsonResponse(completion_body(outcome))
    for name, value in fallback_headers(outcome).items():
        response[name] = value
    return response


@csrf_exempt
@json_errors("GET")
def models(request: HttpRequest) -> HttpResponse:
    """GET /v1/models: the routes this key may name, each with its providers in
    order, the default one marked."""
    allowed = allowed_route_names(require_client_key(request))
    return JsonResponse(model_list_body(_visible_routes(allowed)))


@csrf_exempt
@json_errors("GET")
def status(request: HttpRequest) -> HttpResponse:
    """GET /api/status: the routes in order, and their providers' breaker, cooldown
    and recent success rate. A route-limited key sees only its routes and their
    providers; staff and unlimited keys see everything."""
    key = require_staff_or_client_key(request)
    allowed = allowed_route_names(key) if key is not None else None
    routes = _visible_routes(allowed)
    now = get_clock().now()
    return JsonResponse(
        status_body(
            provider_status_list(now=now, route_names=allowed),
            routes,
            now=now,
            window_s=int(STATUS_WINDOW.total_seconds()),
        )
    )


def _visible_routes(allowed: frozenset[str] | None) -> list:
    """The routes a caller may name (None: every route, or the implicit one)."""
    routes = routing_table().route_list()
    if allowed is None:
        return routes
    return [route for route in routes if route.name in allowed]


@csrf_exempt
@json_errors("GET", "POST", "PUT", "PATCH", "DELETE")
def not_found(request: HttpRequest, path: str) -> HttpResponse:
    """Other /v1/ paths (embeddings, images, ...): an OpenAI-shaped 404, not an HTML page."""
    raise ApiError(
        404,
        f"/v1/{path[:100]} is not served here; this service offers /v1/chat/completions "
        "and /v1/models.",
        code="unknown_url",
    )
