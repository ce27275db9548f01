"""One adapter (and so one pooled HTTP session) per provider configuration per process.

A new TLS connection per call costs milliseconds; reusing the adapter keeps the
connection pool warm. The API key is read from the environment at call time, so
a rotated key takes effect on the next request.
"""

import hashlib
import os
import threading

from ..adapters import adapter_for
from ..adapters.base import AdapterConfig, ProviderAdapter
from ..adapters.errors import Category, ProviderAuthError
from ..models import KINDS_NEEDING_KEY
from ..outbound import key_env_allowed, provider_outbound_problems
from ..selectors import RouteEntry

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
        # A digest, so the pool key holds no secret if it is ever logged.
        hashlib.sha256((api_key or "").encode()).hexdigest(),
    )
    with _lock:
        cached = _pool.get(entry.id)
        if cached and cached[0] == identity:
            return cached[1]
        if provider_outbound_problems(api_key_env="", base_url=entry.base_url, extra=entry.extra):
            raise _refused(entry)
        adapter = adapter_for(entry.kind, _config_of(entry, api_key))
        _pool[entry.id] = (identity, adapter)
    if cached:
        cached[1].close()
    return adapter


def _refused(entry: RouteEntry) -> ProviderAuthError:
    # The message names no variable value; `manage.py check` (W010) says what to fix.
    return ProviderAuthError(
        "This provider's configuration breaks the outbound policy and is never called; "
        "see `manage.py check` (providers_app.W010).",
        provider=entry.name,
        category=Category.AUTH,
    )


def _config_of(entry: RouteEntry, api_key: str | None) -> AdapterConfig:
    extra = entry.extra or {}
    return AdapterConfig(
        provider=entry.name,
        base_url=entry.base_url,
        model=entry.model,
        api_key=api_key,
        headers=dict(extra.get("headers", {})),
        params=dict(extra.get("params", {})),
    )


def adapter_pool_clear() -> None:
    with _lock:
        adapters = [adapter for _, adapter in _pool.values()]
        _pool.clear()
    for adapter in adapters:
        adapter.close()
