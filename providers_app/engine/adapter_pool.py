"""One adapter (and so one pooled HTTP session) per provider configuration per process.

A new TLS connection per call costs milliseconds; reusing the adapter keeps the
connection pool warm. The API key is read from the environment at call time, so
a rotated key takes effect on the next request.

Threads: the pool is a dict behind one lock. When a provider's configuration
changes, its adapter is replaced but never closed here: threads may still be
calling it (a stream can run for minutes). Its session is closed by a
finaliser once the last thread drops the adapter.

Handing out an adapter means an upstream call follows, which may take seconds
or minutes: the thread's database connection goes back to the pool for that
time (when a pool is configured and no transaction is open), so a few database
connections serve hundreds of threads. The next query takes one again.
"""

import hashlib
import os
import threading
import weakref

from django.db import DEFAULT_DB_ALIAS, connections

from ..adapters import adapter_for
from ..adapters.base import AdapterConfig, ProviderAdapter
from ..adapters.errors import Category, ProviderAuthError
from ..models import KINDS_NEEDING_KEY
from ..outbound import key_env_allowed, provider_outbound_problems
from ..selectors import RouteEntry
from .capabilities import entry_continuation

_lock = threading.Lock()
_pool: dict[int, tuple[tuple, ProviderAdapter]] = {}


def adapter_for_entry(entry: RouteEntry) -> ProviderAdapter:
    """The adapter for this provider; raises ProviderAuthError when its key is unset
    or the row breaks the outbound policy (a row saved before the policy existed)."""
    if entry.api_key_env and not key_env_allowed(entry.api_key_env):
        raise _refused(entry)
    api_key = os.environ.get(entry.api_key_env) if entry.api_key_env else None
    if entry.kind in KINDS_NEEDING_KEY and not api_key:
        raise ProviderAuthError(
            f"The API key variable {entry.api_key_env or '(none)'} is not set.",
            provider=entry.name,
            category=Category.AUTH,
        )
    identity = (
        entry.kind,
        entry.name,
        entry.base_url,
        entry.model,
        entry.extra,  # compared by value: a fresh dict per snapshot
        entry.continuation,  # learned or edited: the body changes with it
        # A digest, so the pool key holds no secret if it is ever logged.
        hashlib.sha256((api_key or "").encode()).hexdigest(),
    )
    with _lock:
        cached = _pool.get(entry.id)
        if cached and cached[0] == identity:
            adapter = cached[1]
        else:
            if provider_outbound_problems(
                api_key_env="", base_url=entry.base_url, extra=entry.extra
            ):
                raise _refused(entry)
            adapter = adapter_for(entry.kind, _config_of(entry, api_key))
            # The replaced adapter (if any) is closed by its own finaliser when
            # the last thread using it lets go, never under a call in flight.
            # (Bound to the session, not the adapter, which it must not keep alive.)
            weakref.finalize(adapter, adapter.session.close)
            _pool[entry.id] = (identity, adapter)
    release_database_connection()
    return adapter


def _refused(entry: RouteEntry) -> ProviderAuthError:
    # The message names no variable value; `manage.py check` (W010) says what to fix.
    return ProviderAuthError(
        "This provider's configuration breaks the outbound policy and is never called; "
        "see `manage.py check` (providers_app.W010).",
        provider=entry.name,
        category=Category.AUTH,
    )


def release_database_connection() -> None:
    """Give this thread's database connection back to the pool before a long wait.

    Only with a connection pool (closing a plain connection would cost a new
    connect per request) and outside a transaction (closing would end it).
    """
    connection = connections[DEFAULT_DB_ALIAS]
    if connection.connection is None or connection.in_atomic_block:
        return
    if getattr(connection, "pool", None):
        connection.close()


def _config_of(entry: RouteEntry, api_key: str | None) -> AdapterConfig:
    extra = entry.extra or {}
    return AdapterConfig(
        provider=entry.name,
        base_url=entry.base_url,
        model=entry.model,
        api_key=api_key,
        headers=dict(extra.get("headers", {})),
        params=dict(extra.get("params", {})),
        continuation=entry_continuation(entry),
    )


def adapter_pool_clear() -> None:
    """Forget every adapter (tests, forks); each closes once no thread holds it."""
    with _lock:
        _pool.clear()
