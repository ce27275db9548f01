"""Who may call the API: a client key as `Authorization: Bearer <key>`, or a staff session."""

from __future__ import annotations

from django.http import HttpRequest

from ..models import ClientKey
from ..services.client_keys import ClientKeyRefused, KeyProblem, client_key_authenticate
from .errors import ApiError

_MESSAGES = {
    KeyProblem.MISSING: (
        "No API key provided. Send it as 'Authorization: Bearer <key>'; "
        "create one with 'manage.py create_client_key NAME'."
    ),
    KeyProblem.UNKNOWN: "Incorrect API key provided.",
    KeyProblem.REVOKED: "This API key has been revoked.",
}
_CODES = {
    KeyProblem.MISSING: "missing_api_key",
    KeyProblem.UNKNOWN: "invalid_api_key",
    KeyProblem.REVOKED: "revoked_api_key",
}


def bearer_token(request: HttpRequest) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (scheme case-insensitive)."""
    scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def require_client_key(request: HttpRequest) -> ClientKey:
    """The caller's active client key, or a 401 ApiError."""
    try:
        return client_key_authenticate(raw_key=bearer_token(request))
    except ClientKeyRefused as refused:
        raise unauthorized(refused.problem) from None


def require_staff_or_client_key(request: HttpRequest) -> None:
    """A signed-in staff member (session) or a client key; else a 401 ApiError."""
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated and user.is_staff:
        return
    require_client_key(request)


def unauthorized(problem: KeyProblem) -> ApiError:
    return ApiError(
        401,
        _MESSAGES[problem],
        code=_CODES[problem],
        headers={"WWW-Authenticate": 'Bearer realm="fallback"'},
    )
