"""HTML and session surfaces: liveness and the chatbot page (thin: parse, call, render).

The chatbot page is for signed-in users holding `providers_app.use_chat` (each
answer spends provider credit), with CSRF on: the page posts the conversation
with `fetch` and reads the answer as NDJSON while it streams.
"""

import re

from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required, permission_required
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.templatetags.static import static
from django.urls import reverse_lazy
from django.views.decorators.http import require_GET

from .api.errors import ApiError, api_error_for, json_errors
from .api.parsing import load_json_object, parse_messages, read_body
from .api.streaming import chat_page_ndjson, streaming_response
from .conf import get_setting
from .engine import fallback
from .engine.clock import get_clock
from .engine.routing import routing_table

CHAT_LOGIN_URL = "chat-login"
CHAT_PERMISSION = "providers_app.use_chat"


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers; no database needed."""
    return JsonResponse({"status": "ok"})


@require_GET
def favicon(request: HttpRequest) -> HttpResponseRedirect:
    """Browsers ask for /favicon.ico on every page without an icon link (the admin's)."""
    return HttpResponseRedirect(static("providers_app/favicon.png"))


@login_required(login_url=CHAT_LOGIN_URL)
@permission_required(CHAT_PERMISSION, raise_exception=True)
@require_GET
def chat_page(request: HttpRequest) -> HttpResponse:
    """The conversation view; the conversation itself lives in the browser tab."""
    return render(request, "providers_app/chat.html", {"first_provider": _first_provider()})


def _first_provider() -> str:
    """The provider that should answer first (for "waiting for primary… 4 s"): the
    default route's first whose breaker admits requests and that is not cooling
    down, as of now; "" when none (the page then says "waiting for an answer")."""
    try:
        resolved = routing_table().resolve(None)
    except Exception:  # the page must render even when routing cannot be read
        return ""
    now = get_clock().now()
    for entry in resolved.entries if resolved else ():
        cooling = entry.cooldown_until is not None and entry.cooldown_until > now
        if entry.state in ("closed", "half_open", "never_trip") and not cooling:
            return entry.name
    return ""


@json_errors("POST")
def chat_send(request: HttpRequest) -> HttpResponse:
    """POST /chat/send `{"messages": [...]}`: the answer as NDJSON lines
    (meta with the provider, deltas, then done or a partial error)."""
    if not request.user.is_authenticated:
        # A fetch cannot follow a login redirect usefully: say so in JSON.
        raise ApiError(401, "Your session has ended; sign in again.", code="login_required")
    if not request.user.has_perm(CHAT_PERMISSION):
        raise ApiError(
            403,
            "Your account may not use the chat (it needs the use_chat permission).",
            error_type="permission_error",
            code="permission_denied",
        )
    body = read_body(request, limit=get_setting("MAX_REQUEST_BYTES"))
    payload = load_json_object(body)
    messages = parse_messages(payload.get("messages"))
    progress = _progress_key(request, payload.get("progress_id"))
    try:
        stream = fallback.stream(messages, on_attempt=_progress_writer(progress))
    except fallback.FallbackError as error:
        raise api_error_for(error) from error
    return streaming_response(
        stream, chat_page_ndjson(stream), content_type="application/x-ndjson; charset=utf-8"
    )


# "Who is being asked now", while the page waits for the first word: written by
# the request as each provider's turn starts, read by the page's polling
# (`chat_progress`). Kept in the cache (shared by every process when the cache
# is Redis; with the per-process default the page may see only the first name).
PROGRESS_ID = re.compile(r"[A-Za-z0-9-]{8,64}")
PROGRESS_TTL_S = 120


def _progress_key(request: HttpRequest, progress_id) -> str | None:
    """The cache key of one request's progress, per user; None without a valid id."""
    if not isinstance(progress_id, str) or not PROGRESS_ID.fullmatch(progress_id):
        return None
    return f"chat-progress:{request.user.pk}:{progress_id}"


def _progress_writer(key: str | None):
    if key is None:
        return None
    tried: list[str] = []

    def on_attempt(provider: str) -> None:
        tried.append(provider)
        cache.set(key, {"provider": provider, "tried": list(tried)}, PROGRESS_TTL_S)

    return on_attempt


@json_errors("GET")
def chat_progress(request: HttpRequest, progress_id: str) -> JsonResponse:
    """GET /chat/progress/<id>: the provider the page's pending request is asking
    now, and those asked before it (`{}` until the first turn starts)."""
    if not request.user.is_authenticated or not request.user.has_perm(CHAT_PERMISSION):
        raise ApiError(403, "Sign in to use the chat.", code="permission_denied")
    key = _progress_key(request, progress_id)
    if key is None:
        raise ApiError(400, "progress_id: 8 to 64 letters, digits or dashes.", param="progress_id")
    response = JsonResponse(cache.get(key) or {})
    response["Cache-Control"] = "no-store"
    return response


class ChatLoginView(auth_views.LoginView):
    """Sign-in for the chatbot page. Unlike the admin's, it admits non-staff users."""

    template_name = "providers_app/login.html"
    redirect_authenticated_user = True
    next_page = reverse_lazy("chat")


class ChatLogoutView(auth_views.LogoutView):
    next_page = reverse_lazy("chat-login")
