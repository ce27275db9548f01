"""Fairness limits counted across processes: the one place a limit is taken and given back.

    lease = acquire(key_limits(key))   # LimitExceeded if any limit is full
    ...                                # the request (a stream: until it ends)
    lease.renew_if_due()               # now and then, while a stream runs
    lease.release()                    # idempotent

A budget (engine/budgets.py) takes an amount of a window limit instead,
`acquire([limit], amount=reserved)`, and settles it when the request ends with
`adjust(limit, window_start=..., delta=billed - reserved)`.

`acquire` takes every limit or none. Limits count in the database (default) or
in Redis (FALLBACK_LIMITS_REDIS_URL), never in one process's memory. When the
counting store cannot answer, the request is let through (logged and counted as
`fallback_store_errors_total{operation="limits"}`): fairness must not turn an
outage of the store into an outage of the API. The kinds are in `kinds.py`.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Sequence
from typing import Any

from ..conf import get_setting
from ..engine import metrics
from ..engine.clock import get_clock
from .kinds import KINDS, Limit, LimitExceeded, LimitKind, Mechanism

__all__ = [
    "KINDS",
    "Lease",
    "Limit",
    "LimitExceeded",
    "LimitKind",
    "acquire",
    "adjust",
    "counting_backend",
    "key_limits",
]

logger = logging.getLogger(__name__)


def key_limits(key: Any) -> list[Limit]:
    """The limits of one client key: its own override of each kind, else the default."""
    return [
        Limit(
            kind=kind,
            scope=f"key:{key.pk}",
            maximum=getattr(key, spec.key_field, None) or get_setting(spec.setting),
        )
        for kind, spec in KINDS.items()
        if spec.setting
    ]


_backends: dict[str, Any] = {}
_backends_lock = threading.Lock()


def counting_backend():
    """Where limits are counted: Redis when FALLBACK_LIMITS_REDIS_URL is set, else the database."""
    url = get_setting("LIMITS_REDIS_URL")
    backend = _backends.get(url)
    if backend is None:
        with _backends_lock:
            if url:
                from .redis_backend import RedisCounting

                backend = RedisCounting(url)
            else:
                from .database_backend import DatabaseCounting

                backend = DatabaseCounting()
            _backends[url] = backend
    return backend


class Lease:
    """What one request holds: its slots (released at its end) and its token."""

    def __init__(self, limits: Sequence[Limit], token: str, backend: Any) -> None:
        self._slots = [limit for limit in limits if limit.mechanism is Mechanism.SLOTS]
        self.token = token
        self._backend = backend
        self._renewed_at = get_clock().monotonic()
        self._released = not self._slots
        self.counted = backend is not None and bool(limits)  # False: let through uncounted

    def renew_if_due(self) -> None:
        """Extend the slots when a third of the lease has passed (one comparison otherwise)."""
        if self._released:
            return
        lease_s = get_setting("LIMIT_LEASE_S")
        clock = get_clock()
        if clock.monotonic() - self._renewed_at < lease_s / 3:
            return
        self._renewed_at = clock.monotonic()
        try:
            self._backend.renew(
                self._slots, token=self.token, now=clock.now().timestamp(), lease_s=lease_s
            )
        except self._backend.errors:
            logger.warning("could not renew limit slots %s", self.token)
            metrics.store_error("limits")

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        try:
            self._backend.release(self._slots, token=self.token)
        except self._backend.errors:
            # The slot expires by itself within FALLBACK_LIMIT_LEASE_S.
            logger.warning("could not release limit slots %s", self.token)
            metrics.store_error("limits")


def acquire(limits: Sequence[Limit], *, amount: int = 1, now: float | None = None) -> Lease:
    """Take a slot of every slot limit and `amount` of every window limit, or raise
    LimitExceeded naming the first that is full (nothing is taken then).
    `lease.counted` is False when the store could not count (let through)."""
    backend = counting_backend()
    token = uuid.uuid4().hex
    if now is None:
        now = get_clock().now().timestamp()
    try:
        refused = backend.acquire(
            limits, token=token, now=now, lease_s=get_setting("LIMIT_LEASE_S"), amount=amount
        )
    except backend.errors:
        logger.warning("limits could not be counted; request let through", exc_info=True)
        metrics.store_error("limits")
        return Lease((), token, None)
    if refused is not None:
        raise LimitExceeded(refused, refused.retry_after_s(now))
    return Lease(limits, token, backend)


def adjust(limit: Limit, *, window_start: int, delta: int) -> None:
    """Change what a window limit counted (a budget's reservation replaced by what was
    billed). A window that has ended is left as it is; a store error is logged and counted."""
    if not delta:
        return
    backend = counting_backend()
    try:
        backend.adjust(limit, window_start=window_start, delta=delta)
    except backend.errors:
        logger.warning("could not adjust limit %s %s", limit.scope, limit.kind)
        metrics.store_error("limits")
