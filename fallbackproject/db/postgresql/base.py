"""Django's PostgreSQL backend, failing fast while the database is unreachable.

With a connection pool, asking for a connection while the server is down waits
the pool timeout (seconds) on every query, and a request makes several: with
the database gone, each chat would take tens of seconds even though the engine
can answer it from its last routing snapshot. So after a failed connect, this
process fails new connections at once for DATABASE_RETRY_AFTER_FAILURE_S; then
one thread tries again (the others still fail at once) and a success ends it.
See docs/operations.md ("Serving through a database outage").
"""

import threading
import time

from django.conf import settings
from django.db.backends.postgresql import base


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


class DatabaseWrapper(base.DatabaseWrapper):
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
