"""The routing snapshot a request follows, kept per process and reread only when it changed.

The snapshot is a `RoutingTable`: the enabled providers with their breaker
state, and each named route's providers in the route's order
(`resolve(model)`). A route's order is the only order there is. With no route
configured at all, every name follows the implicit route `fallback`: the
enabled providers in the order they were added (the first reorder in the admin
turns it into a real default route, services/routes.py).

Database triggers bump `RoutingVersion.version` in the same transaction as any
write to a Provider, BreakerState, Route or RouteMember row (admin save,
reorder, bulk update, breaker transition, cooldown, route edit). A process
keeps its snapshot with the token it was read at and reuses it while the token
holds:

- On PostgreSQL the trigger also sends a notification (`pg_notify`, delivered
  at commit). A thread per process LISTENs; each notification moves a local
  change epoch, so a request costs no database round trip at all while nothing
  changes. A change is seen as soon as its notification arrives (well under a
  millisecond on one host), normally before the next request.
- Otherwise (SQLite; PostgreSQL behind PgBouncer in transaction pooling
  (DATABASE_BEHIND_PGBOUNCER), where LISTEN does not pass; PostgreSQL while
  the listener is not connected or has not heard from the server for a while;
  or inside a transaction, which sees its own uncommitted changes) each request
  reads the one-row version, which a change moves in the same transaction: the
  next request, on any machine, sees it.

If the database cannot be read, the last snapshot this process saw is used
and the failure is logged and counted: a request never fails because of it.
"""

import logging
import os
import threading
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.db import DatabaseError, connections, router, transaction
from django.db.models import F

from ..models import RoutingVersion
from ..selectors import RouteEntry, RouteSpec, provider_list_for_routing, route_list_for_routing
from . import metrics

logger = logging.getLogger(__name__)

CHANNEL = "fallback_routing"  # the trigger's pg_notify channel (migration 0006)

# The route every name follows while no route is configured (what `model` meant
# before routes; the migrations name the default route they create so too).
IMPLICIT_ROUTE = "fallback"


@dataclass(frozen=True)
class ResolvedRoute:
    """The providers one request walks, in order, with the route's own settings."""

    name: str
    entries: tuple[RouteEntry, ...]
    deadline_s: float | None = None
    failover_on_content_filter: bool | None = None
    hold_back: bool = False
    auto_hold_back: bool = False  # hold back only where nobody behind can continue
    is_default: bool = False


@dataclass(frozen=True)
class RoutingTable:
    """Everything routing needs, read together and kept together (treat as read-only)."""

    entries: list[RouteEntry]
    routes: dict[str, ResolvedRoute] = field(default_factory=dict)
    default: ResolvedRoute | None = None

    @classmethod
    def build(cls, entries: list[RouteEntry], specs: list[RouteSpec]) -> "RoutingTable":
        by_id = {entry.id: entry for entry in entries}
        routes = {
            spec.name: ResolvedRoute(
                name=spec.name,
                # Disabled providers are not in `entries`: they drop out here.
                entries=tuple(by_id[i] for i in spec.provider_ids if i in by_id),
                deadline_s=spec.deadline_s,
                failover_on_content_filter=spec.failover_on_content_filter,
                hold_back=spec.hold_back,
                auto_hold_back=spec.auto_hold_back,
                is_default=spec.is_default,
            )
            for spec in specs
        }
        default = next((route for route in routes.values() if route.is_default), None)
        if not routes:
            default = ResolvedRoute(name=IMPLICIT_ROUTE, entries=tuple(entries), is_default=True)
        return cls(entries, routes, default)

    def resolve(self, name: str | None) -> ResolvedRoute | None:
        """The route a client's `model` names, else the default route, else None."""
        if name is not None:
            named = self.routes.get(name)
            if named is not None:
                return named
        return self.default

    def route_list(self) -> list[ResolvedRoute]:
        """What a client may name: the routes by name (or the implicit one)."""
        if not self.routes and self.default is not None:
            return [self.default]
        return list(self.routes.values())


_lock = threading.Lock()
# (token it was read at, table); swapped as one tuple so readers never see a
# token paired with another snapshot. A token holding None never validates.
_snapshot: tuple[tuple, RoutingTable] | None = None

_EMPTY = RoutingTable.build([], [])


def routing_snapshot() -> list[RouteEntry]:
    """Enabled providers in the order added, with breaker state (treat as read-only)."""
    return routing_table().entries


def routing_table() -> RoutingTable:
    """The providers and the routes, from this process's snapshot while it is current."""
    global _snapshot
    remembered = _snapshot
    try:
        token = _current_token()
        if remembered is not None and token[1] is not None and remembered[0] == token:
            return remembered[1]
        # Read after the token: the table is at least as new as it, so a
        # change committed in between only costs one more read next time.
        # Two queries, only after a change; a request while nothing changed
        # reads nothing but the token.
        table = RoutingTable.build(provider_list_for_routing(), route_list_for_routing())
    except DatabaseError as error:
        # One line, no traceback: during an outage every request comes here.
        logger.warning("routing read failed (%s); using the last snapshot this process saw", error)
        metrics.store_error("routing_read")
        return remembered[1] if remembered else _EMPTY
    with _lock:
        _snapshot = (token, table)
    return table


def _current_token() -> tuple:
    connection = connections[router.db_for_read(RoutingVersion)]
    if (
        connection.vendor == "postgresql"
        and not connection.in_atomic_block
        and not getattr(settings, "DATABASE_BEHIND_PGBOUNCER", False)
    ):
        epoch = change_listener.epoch()
        if epoch is not None:
            return ("notified", epoch)
    return ("version", routing_version())


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
    """Say that routing changed, in the caller's transaction: once it commits, this
    process drops its snapshot at once (without waiting for its own notification),
    and every other process rereads as described above.

    Writes to Provider and BreakerState rows bump the version by trigger already;
    the explicit bump keeps callers (services, breaker transitions) working should
    a snapshot ever depend on another table.
    """
    RoutingVersion.objects.filter(pk=1).update(version=F("version") + 1)
    transaction.on_commit(_invalidate)


def _invalidate() -> None:
    """The next request rereads; the entries stay as the fallback for a database error."""
    global _snapshot
    with _lock:
        if _snapshot is not None:
            _snapshot = (("invalidated", None), _snapshot[1])


class ChangeListener:
    """PostgreSQL: one thread per process LISTENing for routing changes.

    `epoch()` is a number that moves on every notification, and also whenever
    the listener (re)connects or loses its connection (changes may have been
    missed then). It is None, meaning "read the version row instead", until the
    listener is connected, and whenever it has not heard from the server
    (a notification or its own ping) within STALE_AFTER_S.
    """

    PING_S = 1.0  # how often an idle listener proves its connection is alive
    STALE_AFTER_S = 3.0
    RETRY_S = 2.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._epoch = 0
        self._live = False
        self._heard_at = 0.0
        self._pid: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.pooler_detected = False  # see _behind_transaction_pooler

    def epoch(self) -> int | None:
        if self._pid != os.getpid():  # first use in this process (or a fork)
            self._start()
            return None
        with self._lock:
            if not self._live or time.monotonic() - self._heard_at > self.STALE_AFTER_S:
                return None
            return self._epoch

    def stop(self, timeout: float = 5.0) -> None:
        """Stop listening (tests, before their database is dropped)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._lock:
            self._pid, self._thread, self._live = None, None, False

    def _start(self) -> None:
        params = _listener_params()
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid, self._live = os.getpid(), False
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._run, args=(params,), name="fallback-routing-listener", daemon=True
            )
        self._thread.start()

    def _heard(self, *, live: bool, changed: bool) -> None:
        with self._lock:
            self._epoch += 1 if changed else 0
            self._live = live
            self._heard_at = time.monotonic()

    def _run(self, params: dict) -> None:
        import psycopg

        while not self._stop.is_set():
            try:
                with psycopg.connect(**params, autocommit=True) as conn:
                    if _behind_transaction_pooler(conn, params):
                        logger.warning(
                            "routing change listener: the database is reached through a "
                            "transaction pooler, where LISTEN does not work; set "
                            "DJANGO_DB_PGBOUNCER=true. Reading the routing version per request."
                        )
                        self.pooler_detected = True
                        return  # epoch() stays None: every request reads the version row
                    conn.execute(f"LISTEN {CHANNEL}")
                    # Anything before the LISTEN went unheard: count it as a change.
                    self._heard(live=True, changed=True)
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=self.PING_S):
                            self._heard(live=True, changed=True)
                        conn.execute("SELECT 1")
                        self._heard(live=True, changed=False)
            except Exception as error:  # the thread must outlive any database trouble
                logger.warning("routing change listener disconnected (%s); retrying", error)
            self._heard(live=False, changed=True)
            self._stop.wait(self.RETRY_S)


def _behind_transaction_pooler(conn, params: dict) -> bool:
    """True when a second connection's statement runs on the same server process
    as `conn`'s: two sessions straight to PostgreSQL never share one, while a
    transaction pooler (PgBouncer) hands both the server connection it just got
    back. A False is no proof of the contrary (a busy pooler may pick another)."""
    import psycopg

    ours = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    with psycopg.connect(**params, autocommit=True) as other:
        return other.execute("SELECT pg_backend_pid()").fetchone()[0] == ours


def _listener_params() -> dict:
    """Connection parameters of the database routing reads (its own connection, no pool)."""
    connection = connections[router.db_for_read(RoutingVersion)]
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params["application_name"] = LISTENER_APPLICATION_NAME  # visible in pg_stat_activity
    return params


LISTENER_APPLICATION_NAME = "fallback-routing-listener"


change_listener = ChangeListener()
