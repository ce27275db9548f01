"""The routing snapshot a request follows, kept per process behind a one-row version check.

Every request reads `RoutingVersion.version` (one primary-key read, cheaper
than the routing query and its row building). While it equals the version the
process's snapshot was read at, the snapshot is current: database triggers bump
the version in the same transaction as any change to a Provider or BreakerState
row (admin save, reorder, breaker transition, cooldown), so the next request in
every process sees a reorder or an opened breaker. Only when it moved is the
routing query run again.

If the database cannot be read, the last snapshot this process saw is used
and the failure is logged and counted: a request never fails because of it.
"""

import logging
import threading

from django.db import DatabaseError, connections, router
from django.db.models import F

from ..models import RoutingVersion
from ..selectors import RouteEntry, provider_list_for_routing
from . import metrics

logger = logging.getLogger(__name__)

_lock = threading.Lock()
# (version it was read at, entries); swapped as one tuple so readers never see a
# version paired with another snapshot. A None version never validates.
_snapshot: tuple[int | None, list[RouteEntry]] | None = None


def routing_snapshot() -> list[RouteEntry]:
    """Enabled providers in priority order with breaker state (treat as read-only)."""
    global _snapshot
    remembered = _snapshot
    try:
        version = routing_version()
        if remembered is not None and version is not None and remembered[0] == version:
            return remembered[1]
        # Read after the version: the entries are at least as new as it, so a
        # change committed in between only costs one more read next time.
        entries = provider_list_for_routing()
    except DatabaseError:
        logger.exception("routing read failed; using the last snapshot this process saw")
        metrics.store_error("routing_read")
        return list(remembered[1]) if remembered else []
    with _lock:
        _snapshot = (version, entries)
    return entries


def routing_version() -> int | None:
    """The current routing version (None when its row is missing, e.g. a flushed test DB)."""
    connection = connections[router.db_for_read(RoutingVersion)]
    with connection.cursor() as cursor:
        cursor.execute(_VERSION_SQL)
        row = cursor.fetchone()
    return row[0] if row else None


_VERSION_SQL = f"SELECT version FROM {RoutingVersion._meta.db_table} WHERE id = 1"  # noqa: S608


def routing_snapshot_forget() -> None:
    """Drop the remembered snapshot (tests, and processes that fork)."""
    global _snapshot
    with _lock:
        _snapshot = None


def routing_changed() -> None:
    """Bump the routing version in the caller's transaction: once it commits, every
    process rereads its snapshot on its next request.

    Writes to Provider and BreakerState rows bump it by trigger already; callers
    that say so explicitly (services, breaker transitions) cost one more small
    UPDATE and keep working should a snapshot ever depend on another table.
    """
    RoutingVersion.objects.filter(pk=1).update(version=F("version") + 1)
