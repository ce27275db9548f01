"""Failover history: one row per failover, transition, all-failed outcome or manual change.

Rows never hold a secret or a prompt: `detail` is scrubbed and truncated. Writing
history must never fail a request, so a database error is logged and counted.
"""

import logging
import threading

from django.db import DatabaseError, transaction

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
    request_id: str = "",
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
        request_id=request_id[:64],
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
    carries the count of the failures it stands for.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_write: float | None = None
        self._pending = 0

    def record(self, *, reason: str, detail: str, request_id: str) -> None:
        now = get_clock().monotonic()
        with self._lock:
            self._pending += 1
            window = get_setting("ALL_FAILED_COALESCE_S")
            if self._last_write is not None and now - self._last_write < window:
                return
            count, self._pending, self._last_write = self._pending, 0, now
        failover_event_record(
            kind=FailoverEvent.Kind.ALL_FAILED,
            reason=reason,
            detail=detail,
            request_id=request_id,
            count=count,
        )

    def reset(self) -> None:
        with self._lock:
            self._last_write, self._pending = None, 0


all_failed_events = _AllFailedCoalescer()
