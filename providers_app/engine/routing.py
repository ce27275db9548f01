"""The routing snapshot a request follows, and the change token that invalidates it."""

import logging
import threading
import time

from django.core.cache import cache
from django.db import DatabaseError, transaction

from ..conf import get_setting
from ..selectors import RouteEntry, provider_list_for_routing

logger = logging.getLogger(__name__)

ROUTING_VERSION_KEY = "fallback:routing-version"

_lock = threading.Lock()
_last: list[RouteEntry] | None = None
_last_read_at = 0.0
_last_token: int | None = None


def routing_snapshot() -> list[RouteEntry]:
    """Enabled providers in priority order with breaker state.

    One database query per call unless FALLBACK_ROUTING_CACHE_S is set, in
    which case a snapshot is reused while it is young enough AND the shared
    change token is unchanged. If the database cannot be read, the last
    snapshot this process saw is used: a request never fails because of it.
    """
    global _last, _last_read_at, _last_token
    cache_s = get_setting("ROUTING_CACHE_S")
    token = _change_token() if cache_s > 0 else None
    if (
        cache_s > 0
        and _last is not None
        and token == _last_token
        and time.monotonic() - _last_read_at < cache_s
    ):
        return _last
    try:
        entries = provider_list_for_routing()
    except DatabaseError:
        logger.exception("routing read failed; using the last snapshot this process saw")
        from . import metrics

        metrics.store_error("routing_read")
        return list(_last or [])
    with _lock:
        _last, _last_read_at, _last_token = entries, time.monotonic(), token
    return entries


def routing_snapshot_forget() -> None:
    """Drop the remembered snapshot (tests, and processes that fork)."""
    global _last, _last_token
    with _lock:
        _last, _last_token = None, None


def routing_changed() -> None:
    """Bump the change token once the current transaction commits."""
    transaction.on_commit(_bump_change_token)


def _bump_change_token() -> None:
    try:
        if not cache.add(ROUTING_VERSION_KEY, 1, timeout=None):
            cache.incr(ROUTING_VERSION_KEY)
    except Exception:  # a cache outage degrades to the cache's own expiry
        logger.exception("could not bump the routing change token")


def _change_token() -> int | None:
    try:
        return cache.get(ROUTING_VERSION_KEY)
    except Exception:
        logger.exception("could not read the routing change token")
        return None
