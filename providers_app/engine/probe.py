"""Health probes: the cheapest realistic call that proves a provider answers."""

from dataclasses import dataclass

from ..adapters.errors import ProviderError
from ..conf import get_setting
from ..models import BreakerState, FailoverEvent
from ..selectors import route_entry_for
from .adapter_pool import adapter_for_entry
from .clock import get_clock

Skip = FailoverEvent.SkipReason


# ---------------------------------------------------------------------------
# Health probes
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ProbeOutcome:
    ok: bool
    latency_s: float
    status_code: int | None = None
    category: str = ""
    detail: str = ""
    skipped: str = ""  # why no call was made (cooldown, forced open)


def provider_probe(*, provider_id: int, timeout_s: float | None = None) -> ProbeOutcome:
    """The cheapest realistic call that proves a provider answers.

    It honours cooldown (a rate-limited provider is not poked) and an operator's
    forced-open drain, but not the breaker's admission: an OPEN provider is exactly
    the one worth checking. Results go to HealthCheckResult, never to traffic counters.
    """
    entry = route_entry_for(provider_id)
    now = get_clock().now()
    if entry.cooldown_until and now < entry.cooldown_until:
        return ProbeOutcome(ok=False, latency_s=0.0, skipped=Skip.COOLDOWN)
    if entry.state == BreakerState.State.FORCED_OPEN:
        return ProbeOutcome(ok=False, latency_s=0.0, skipped=Skip.FORCED_OPEN)
    timeout = timeout_s or get_setting("HEALTH_TIMEOUT_S")
    started = get_clock().monotonic()
    try:
        adapter_for_entry(entry).probe(timeout=timeout)
    except ProviderError as error:
        return ProbeOutcome(
            ok=False,
            latency_s=get_clock().monotonic() - started,
            status_code=error.status_code,
            category=error.category,
            detail=error.message,
        )
    return ProbeOutcome(ok=True, latency_s=get_clock().monotonic() - started)
