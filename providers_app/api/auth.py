"""Who may call the API: a client key as `Authorization: Bearer <key>`, or a staff session.

Every check asks the database, so a revoked key stops working at once. When the
database cannot answer, a key the database accepted within the last
FALLBACK_CLIENT_KEY_GRACE_S is still let in (this process remembers the
digests of keys it validated, never the keys), so callers that were just being
served keep being served from the last routing snapshot. A key never seen by
this process, or seen longer ago, gets the usual 503.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict

from django.db import DatabaseError
from django.http import HttpRequest

from ..conf import get_setting
from ..engine import metrics
from ..engine.clock import get_clock
from ..models import ClientKey
from ..services.client_keys import (
    ClientKeyRefused,
    KeyProblem,
    client_key_authenticate,
    client_key_digest,
    client_key_route_names,
)
from .errors import ApiError, route_not_allowed

logger = logging.getLogger(__name__)

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


class RecentlyValidatedKeys:
    """Digests of keys the database accepted, with when (monotonic), bounded in size.

    Thread-safe: one lock around an OrderedDict used as an LRU; every operation
    is a few dictionary steps.
    """

    MAX_ENTRIES = 10_000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: OrderedDict[str, tuple[float, ClientKey]] = OrderedDict()

    def remember(self, digest: str, key: ClientKey) -> None:
        with self._lock:
            self._keys[digest] = (get_clock().monotonic(), key)
            self._keys.move_to_end(digest)
            while len(self._keys) > self.MAX_ENTRIES:
                self._keys.popitem(last=False)

    def forget(self, digest: str) -> None:
        with self._lock:
            self._keys.pop(digest, None)

    def recent(self, digest: str) -> ClientKey | None:
        """The key, if the database accepted it within the grace period."""
        with self._lock:
            found = self._keys.get(digest)
        if found is None:
            return None
        validated_at, key = found
        if get_clock().monotonic() - validated_at > get_setting("CLIENT_KEY_GRACE_S"):
            return None
        return key

    def clear(self) -> None:
        with self._lock:
            self._keys.clear()


recent_keys = RecentlyValidatedKeys()


def require_client_key(request: HttpRequest) -> ClientKey:
    """The caller's active client key, or a 401 ApiError.

    A DatabaseError propagates (the API answers 503) unless the same key was
    validated within the grace period: then the request goes on, logged.
    """
    raw_key = bearer_token(request)
    try:
        key = client_key_authenticate(raw_key=raw_key)
    except ClientKeyRefused as refused:
        if raw_key:
            recent_keys.forget(client_key_digest(raw_key))
        raise unauthorized(refused.problem) from None
    except DatabaseError:
        remembered = recent_keys.recent(client_key_digest(raw_key)) if raw_key else None
        if remembered is None:
            raise
        logger.warning(
            "database unavailable; client key %s accepted from this process's recent checks",
            remembered.prefix,
        )
        metrics.store_error("client_key_read")
        return remembered
    recent_keys.remember(client_key_digest(raw_key), key)
    return key


def require_route_allowed(key: ClientKey, route: str) -> None:
    """A 403 ApiError unless the key may use `route` (an unlimited key may use all; a
    limited one whose routes were all deleted, none).

    The names read are kept on the key object, which this process remembers with
    the key, so during a database outage a remembered key keeps its limits.
    """
    names = allowed_route_names(key)
    if names is not None and route not in names:
        raise route_not_allowed(route)


def allowed_route_names(key: ClientKey) -> frozenset[str] | None:
    """The routes `key` may name (None: every route), from the database; during an
    outage, what this process read last for the remembered key."""
    try:
        names = client_key_route_names(client_key=key)
    except DatabaseError:
        if not hasattr(key, "allowed_route_names"):
            raise
        return key.allowed_route_names
    key.allowed_route_names = names
    return names


def require_staff_or_client_key(request: HttpRequest) -> ClientKey | None:
    """A signed-in staff member (session: None) or a client key (the key); else a
    401 ApiError."""
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated and user.is_staff:
        return None
    return require_client_key(request)


def unauthorized(problem: KeyProblem) -> ApiError:
    return ApiError(
        401,
        _MESSAGES[problem],
        code=_CODES[problem],
        headers={"WWW-Authenticate": 'Bearer realm="fallback"'},
    )
