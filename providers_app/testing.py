"""Helpers for tests and benchmarks that drive the failover layer in-process."""


def process_state_reset() -> None:
    """Make this process look freshly started: no buffered counters, no coalesced
    all-failed events, no remembered routing snapshot, no pooled adapters, no
    recently validated client keys."""
    from .api.auth import recent_keys
    from .engine import counters, routing
    from .engine.adapter_pool import adapter_pool_clear
    from .engine.events import all_failed_events

    counters.discard_pending()
    all_failed_events.reset()
    routing.routing_snapshot_forget()
    adapter_pool_clear()
    recent_keys.clear()
