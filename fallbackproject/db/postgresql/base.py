"""Django's PostgreSQL backend, failing fast while the database is unreachable,
with a cheaper health check for pooled connections.

With a connection pool, asking for a connection while the server is down waits
the pool timeout (seconds) on every query, and a request makes several: with
the database gone, each chat would take tens of seconds even though the engine
can answer it from its last routing snapshot. So after a failed connect, this
process fails new connections at once for DATABASE_RETRY_AFTER_FAILURE_S; then
one thread tries again (the others still fail at once) and a success ends it.
See docs/operations.md ("Serving through a database outage").

Health checks (CONN_HEALTH_CHECKS): Django's pool checks every connection it
hands out with a round trip. A request hands its connection back before each
upstream call and takes one again for its next query, so that check would cost
every request a round trip (0.2 ms of the 0.5 ms budget measured by
bench/overhead.py). Here a connection is checked only when it sat in the pool
longer than POOL_CHECK_AFTER_IDLE_S: a connection used a moment ago is alive
(and if it is not, the query fails like any database error and the engine
serves from its last snapshot), while one that idled through a server restart
or a dropped network is caught before use.
"""

import threading
import time
import weakref

from django.conf import settings
from django.db.backends.base.base import NO_DB_ALIAS
from django.db.backends.postgresql import base

POOL_CHECK_AFTER_IDLE_S = 1.0


def _reconnect_max_delay_s() -> float:
    return float(getattr(settings, "DATABASE_RECONNECT_MAX_DELAY_S", 1.0))


def capped_backoff(timeout: float):
    """psycopg_pool's reconnect attempt, its doubling delay capped.

    The pool replaces a lost connection by trying again after 1, 2, 4, 8, ... s,
    until its reconnect timeout (5 min): after a 2-minute outage its next try
    can be a minute away, and every request meanwhile fails (finding 4). With
    the delay capped at DATABASE_RECONNECT_MAX_DELAY_S, a pool tries at least
    that often, so it is back within about that long of the database.
    """
    from psycopg_pool.base import AttemptWithBackoff

    class CappedBackoff(AttemptWithBackoff):
        def update_delay(self, now: float) -> None:
            super().update_delay(now)
            self.delay = min(self.delay, _reconnect_max_delay_s())

    return CappedBackoff(timeout=timeout)


def _reconnecting_pool_class():
    from psycopg_pool import ConnectionPool

    class ReconnectingPool(ConnectionPool):
        """Django's pool with the capped reconnect delay above (psycopg_pool 3.3's
        `_add_connection` makes its own attempt when given none)."""

        def _add_connection(self, attempt, growing: bool = False) -> None:
            if attempt is None:
                attempt = capped_backoff(self.reconnect_timeout)
            super()._add_connection(attempt, growing)

    return ReconnectingPool


class _Outage:
    """When this process may next try to connect; None while the database answers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._retry_at: float | None = None
        self._since: float | None = None

    def admit(self) -> bool:
        """May this thread try to connect now? While down, one thread per retry period."""
        with self._lock:
            if self._retry_at is None:
                return True
            now = time.monotonic()
            if now < self._retry_at:
                return False
            # This thread probes; the others keep failing fast until it reports.
            self._retry_at = now + _retry_s()
            return True

    def failed(self) -> None:
        with self._lock:
            now = time.monotonic()
            self._since = self._since or now
            self._retry_at = now + _retry_s()

    def recovered(self) -> None:
        with self._lock:
            self._retry_at = self._since = None

    def down_for(self) -> float:
        with self._lock:
            return time.monotonic() - self._since if self._since else 0.0


def _retry_s() -> float:
    return float(getattr(settings, "DATABASE_RETRY_AFTER_FAILURE_S", 2.0))


outage = _Outage()


class _RecentlyReturned:
    """When each pooled connection was last given back (weak keys: the pool owns them)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._at: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def mark(self, connection) -> None:
        """Called as a connection goes back to the pool. (Not the pool's `reset`
        hook: with one, psycopg_pool returns every connection through a worker
        thread, which measured slower than the check this saves.)"""
        with self._lock:
            self._at[connection] = time.monotonic()

    def check(self, connection) -> None:
        """The pool's `check` hook: a round trip only for a connection idle a while."""
        with self._lock:
            returned_at = self._at.get(connection)
        if returned_at is None or time.monotonic() - returned_at > POOL_CHECK_AFTER_IDLE_S:
            from psycopg_pool import ConnectionPool

            ConnectionPool.check_connection(connection)


returned = _RecentlyReturned()


class DatabaseWrapper(base.DatabaseWrapper):
    @property
    def pool(self):
        """Django's pool, built here when health checks are on so that it uses the
        idle-aware check above (Django would pass its own `check`)."""
        options = self.settings_dict["OPTIONS"].get("pool")
        if (
            options
            and self.alias != NO_DB_ALIAS
            and self.alias not in self._connection_pools
            and self.settings_dict["CONN_HEALTH_CHECKS"]
            and self.settings_dict.get("CONN_MAX_AGE", 0) == 0
        ):
            connect_kwargs = self.get_connection_params()
            connect_kwargs["autocommit"] = True  # as Django does; it sets its own later
            pool = _reconnecting_pool_class()(
                kwargs=connect_kwargs,
                open=False,
                configure=self._configure_connection,
                check=returned.check,
                **({} if options is True else options),
            )
            self._connection_pools.setdefault(self.alias, pool)
        return super().pool

    def _close(self):
        if self.connection is not None and self.pool:
            returned.mark(self.connection)
        return super()._close()

    def get_new_connection(self, conn_params):
        if not outage.admit():
            raise self.Database.OperationalError(
                f"database unreachable for {outage.down_for():.1f} s; "
                "not retrying until the retry period has passed"
            )
        try:
            connection = super().get_new_connection(conn_params)
        except self.Database.Error:
            outage.failed()
            raise
        outage.recovered()
        return connection
