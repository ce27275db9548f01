"""Helpers for tests and benchmarks that drive the failover layer in-process."""


def process_state_reset() -> None:
    """Make this process look freshly started: no buffered counters, no coalesced
    all-failed events or sampled traces, no remembered routing snapshot, no pooled adapters, no
    recently validated client keys."""
    from .api.auth import recent_keys
    from .engine import budgets, counters, routing
    from .engine.adapter_pool import adapter_pool_clear
    from .engine.events import all_failed_events
    from .engine.tracing import trace_buffer

    counters.discard_pending()
    all_failed_events.reset()
    trace_buffer.discard()
    routing.routing_snapshot_forget()
    adapter_pool_clear()
    recent_keys.clear()
    budgets.forget_limits()


def breaker_state_set(*providers, state: str, **fields) -> int:
    """Put the breakers of `providers` (instances or ids; none means every provider)
    in `state`, with any other `BreakerState` fields (open_until, open_cycles, ...),
    as if the breaker had moved there; returns how many breakers were set.

    The one way tests and benchmarks arrange breaker state: production code moves a
    breaker only through `engine.breaker`. Every provider has its breaker row, so a
    provider without one is an error here, not a silent no-op.
    """
    from .engine.routing import routing_changed
    from .models import BreakerState

    if state not in BreakerState.State.values:
        raise ValueError(f"unknown breaker state {state!r}")
    rows = BreakerState.objects.all()
    if providers:
        ids = [getattr(provider, "pk", provider) for provider in providers]
        rows = rows.filter(pk__in=ids)
    updated = rows.update(state=state, **fields)
    if providers and updated != len(set(ids)):
        raise LookupError(f"no breaker row for some of the providers {ids}")
    routing_changed()  # bulk updates skip the signals that would say so
    return updated
