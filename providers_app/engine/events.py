"""Failover history: one row per failover, transition, all-failed outcome or manual change.

Rows never hold a secret or a prompt: `detail` is scrubbed and truncated. Writing
history must never fail a request, so a database error is logged and counted.
"""

import atexit
import logging
import threading

from django.db import DatabaseError, connections, transaction

from ..adapters.redaction import scrub_secrets
from ..conf import get_setting
from ..models import FailoverEvent
from . import metrics
from .clock import get_clock

logger = logging.getLogger("providers_app.events")

DETAIL_MAX = 500


def failover_event_record(
    *,
    kind: str,
    provider_id: int | None = None,
    to_provider_id: int | None = None,
    reason: str = "",
    status_code: int | None = None,
    detail: str = "",
    attempt: int | None = None,
    latency_ms: float | None = None,
    delivered_chars: int | None = None,
    request_id: str = "",
    route: str = "",
    actor=None,
    count: int = 1,
) -> FailoverEvent | None:
    event = FailoverEvent(
        kind=kind,
        provider_id=provider_id,
        to_provider_id=to_provider_id,
        reason=reason[:64],
        status_code=status_code,
        detail=scrub_secrets(detail)[:DETAIL_MAX],
        attempt=attempt,
        latency_ms=latency_ms,
        delivered_chars=delivered_chars,
        request_id=request_id[:64],
        route=route[:100],
        actor=actor,
        count=count,
    )
    logger.info(
        "event=%s provider=%s to=%s reason=%s status=%s attempt=%s count=%s request_id=%s",
        kind,
        provider_id,
        to_provider_id,
        reason,
        status_code,
        attempt,
        count,
        request_id,
    )
    try:
        with transaction.atomic():  # a savepoint: a failed insert must not poison the caller's
            event.save()
    except DatabaseError:
        logger.exception("could not write a %s event", kind)
        metrics.store_error("event_write")
        return None
    return event


class _AllFailedCoalescer:
    """At most one `all_failed` row per FALLBACK_ALL_FAILED_COALESCE_S per process.

    While every provider is down each request fails in milliseconds; one row per
    request would turn an outage into a write storm. The row that is written
    carries the count of the failures it stands for. Failures inside a window are
    not lost: a timer writes their count when the window ends, and the process
    writes whatever is still pending when it exits (atexit, and the Celery
    worker's shutdown hook).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_write: float | None = None
        self._pending = 0
        self._latest: dict[str, str] = {}
        self._timer: threading.Timer | None = None

    def record(self, *, reason: str, detail: str, request_id: str, route: str = "") -> None:
        now = get_clock().monotonic()
        with self._lock:
            self._pending += 1
            # The row names the latest failure's request and route; the count covers all.
            self._latest = {
                "reason": reason,
                "detail": detail,
                "request_id": request_id,
                "route": route,
            }
            window = get_setting("ALL_FAILED_COALESCE_S")
            if self._last_write is not None and now - self._last_write < window:
                self._arm_timer(window - (now - self._last_write))
                return
            batch = self._take(now)
        self._write(batch)

    def flush(self) -> None:
        """Write the pending count now, if any (window end, process exit)."""
        with self._lock:
            if self._timer is threading.current_thread():
                self._timer = None  # this timer's work is done; the next burst arms a new one
            batch = self._take(get_clock().monotonic()) if self._pending else None
        if batch:
            self._write(batch)

    def reset(self) -> None:
        with self._lock:
            self._last_write, self._pending, self._latest = None, 0, {}
            self._cancel_timer()

    # -- inside the lock -------------------------------------------------------

    def _take(self, now: float) -> dict:
        batch = {**self._latest, "count": self._pending}
        self._pending, self._last_write = 0, now
        self._cancel_timer()
        return batch

    def _arm_timer(self, delay: float) -> None:
        if self._timer is None:
            self._timer = threading.Timer(max(delay, 0.0), self._flush_from_timer)
            self._timer.daemon = True  # never keeps a process alive; atexit covers the end
            self._timer.start()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            if self._timer is not threading.current_thread():
                self._timer.cancel()
            self._timer = None

    # -- outside the lock --------------------------------------------------------

    def _flush_from_timer(self) -> None:
        try:
            self.flush()
        finally:
            # The timer thread opened its own connection; do not leave it behind.
            connections.close_all()

    @staticmethod
    def _write(batch: dict) -> None:
        failover_event_record(kind=FailoverEvent.Kind.ALL_FAILED, **batch)


all_failed_events = _AllFailedCoalescer()


def _flush_at_exit() -> None:
    try:
        all_failed_events.flush()
    except Exception:  # the interpreter is going away; nothing to report to
        logger.debug("all-failed flush at exit failed", exc_info=True)


atexit.register(_flush_at_exit)
