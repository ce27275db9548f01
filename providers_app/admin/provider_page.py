"""The top of a provider's page: what an operator needs first (breaker state,
last error, a cooldown only while it is active, the recent calls, attempts
(from the request traces) and events),
above the configuration form."""

from datetime import datetime, timedelta

from django.urls import reverse

from ..models import BreakerState, Provider
from ..reasons import reason_label
from ..selectors.providers import (
    provider_call_stats,
    provider_recent_attempts,
    provider_recent_events,
)
from ..timefmt import moment_html
from .common import state_badge
from .traces import trace_url_for

# "Recent": the same five minutes /api/status calls recent.
RECENT = timedelta(minutes=5)
OPEN_STATES = (BreakerState.State.OPEN, BreakerState.State.FORCED_OPEN)


def provider_page_status(provider: Provider, *, now: datetime, admin_site_name: str) -> dict:
    """The template's `provider_status`: every figure already worded."""
    breaker = provider.breaker
    cooling = breaker.cooldown_until is not None and breaker.cooldown_until > now
    is_open = breaker.state in OPEN_STATES
    events = [
        {
            "time": moment_html(event.created_at, now=now),
            "kind": event.get_kind_display(),
            "reason": event.reason or "-",
            "to": event.to_provider.name if event.to_provider else "",
            "status": event.status_code or "",
            "who": event.actor.get_username() if event.actor else "",
            "url": reverse(
                f"{admin_site_name}:providers_app_failoverevent_change", args=[event.pk]
            ),
        }
        for event in provider_recent_events(provider_id=provider.pk)
    ]
    attempts = [
        {
            "time": moment_html(attempt.at, now=now),
            "outcome": attempt.outcome,
            "reason": reason_label(attempt.reason) if attempt.reason else "",
            "status": attempt.status or "",
            "request_id": attempt.request_id,
            "url": trace_url_for(attempt.request_id),
        }
        for attempt in provider_recent_attempts(provider_name=provider.name)
    ]
    return {
        "state": state_badge(breaker),
        "last_error": breaker.last_error,
        "opened_at": moment_html(breaker.opened_at, now=now) if is_open else None,
        "open_until": moment_html(breaker.open_until, now=now)
        if is_open and breaker.open_until
        else None,
        # An expired cooldown is no cooldown: shown only while it lasts.
        "cooldown_until": moment_html(breaker.cooldown_until, now=now) if cooling else None,
        "consecutive_failures": breaker.consecutive_failures,
        "recent": provider_call_stats(provider_id=provider.pk, since=now - RECENT),
        "events": events,
        "attempts": attempts,
    }
