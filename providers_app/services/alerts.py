"""Alerts: an incident opens once, is alerted once, resolves once (issue 23 item 7).

Three kinds of incident (`AlertIncident.Kind`):

- a provider's breaker opened (resolved when it closes), from its
  `breaker_opened` / `breaker_closed` events (or an operator's reset,
  force-close or never-trip);
- every provider of a route down (a request on it failed with all of them),
  from its `all_failed` event; resolved when no request of the route has failed
  that way for FALLBACK_ALERT_WINDOW_S;
- the failover rate over FALLBACK_ALERT_FAILOVER_RATE percent of the requests
  of the last FALLBACK_ALERT_WINDOW_S (at least FALLBACK_ALERT_MIN_REQUESTS of
  them); resolved when it is back under.

`incident_open` / `incident_resolve` return the incident only when its state
really changed (one open row per kind and subject, a database constraint), so a
storm of events sends one alert; the caller (signals, tasks) then enqueues
`alert_deliver` on Celery. Delivery sends to every enabled channel that takes
the kind: a webhook POSTs `{"text": ...}` (Slack's incoming-webhook body) under
the providers' outbound policy (`outbound.base_url_refusal`: allowed hosts, no
credentials in the URL; redirects are not followed), an email goes through
Django's mail. A channel that fails is logged and counted; the others still get it.
"""

import logging
import os
from dataclasses import dataclass
from datetime import datetime, timedelta

import requests
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Sum

from ..conf import get_setting
from ..engine import metrics
from ..engine.clock import get_clock
from ..models import AlertChannel, AlertIncident, CallBucket, FailoverEvent
from ..outbound import base_url_refusal

logger = logging.getLogger("providers_app.alerts")

Kind = AlertIncident.Kind
OPEN, RESOLVE, TEST = "open", "resolve", "test"
SECRET_PLACEHOLDER = "{secret}"  # noqa: S105 (the placeholder's name, not a secret)
# Which channel switch takes which kind.
CHANNEL_SWITCH = {
    Kind.BREAKER_OPEN: "on_breaker",
    Kind.ROUTE_DOWN: "on_route_down",
    Kind.FAILOVER_RATE: "on_failover_rate",
}


# An operator who closes a breaker by hand ends its incident too.
OPERATOR_CLOSES = frozenset(
    {
        FailoverEvent.ManualReason.RESET,
        FailoverEvent.ManualReason.FORCE_CLOSED,
        FailoverEvent.ManualReason.NEVER_TRIP,
    }
)


class AlertDeliveryError(Exception):
    """One channel could not be reached; the message says why (never the secret)."""


# ---------------------------------------------------------------------------
# Incidents
# ---------------------------------------------------------------------------


def incident_open(*, kind: str, subject: str, detail: str) -> AlertIncident | None:
    """Open the incident unless one of this kind and subject is open: the new row,
    or None (nothing to alert)."""
    if AlertIncident.objects.filter(kind=kind, subject=subject, resolved_at=None).exists():
        return None
    try:
        with transaction.atomic():
            return AlertIncident.objects.create(
                kind=kind, subject=subject[:100], detail=detail[:500], opened_at=get_clock().now()
            )
    except IntegrityError:  # another process opened it first
        return None


def incident_resolve(*, kind: str, subject: str) -> AlertIncident | None:
    """Resolve the open incident of this kind and subject: the row, or None if none was open."""
    incident = AlertIncident.objects.filter(kind=kind, subject=subject, resolved_at=None).first()
    if incident is None:
        return None
    resolved = AlertIncident.objects.filter(pk=incident.pk, resolved_at=None).update(
        resolved_at=get_clock().now()
    )
    if not resolved:  # another process resolved it first
        return None
    incident.refresh_from_db()
    return incident


def incidents_from_event(event: FailoverEvent) -> list[tuple[int, str]]:
    """The (incident id, phase) an event opens or resolves (breaker and route-down kinds)."""
    provider = event.provider.name if event.provider_id else ""
    changed: list[tuple[int, str]] = []
    if event.kind == FailoverEvent.Kind.BREAKER_OPENED:
        incident = incident_open(
            kind=Kind.BREAKER_OPEN,
            subject=provider,
            detail=f"reason {event.reason}: {event.detail}",
        )
        changed += [(incident.pk, OPEN)] if incident else []
    elif event.kind == FailoverEvent.Kind.BREAKER_CLOSED or (
        event.kind == FailoverEvent.Kind.MANUAL and event.reason in OPERATOR_CLOSES
    ):
        incident = incident_resolve(kind=Kind.BREAKER_OPEN, subject=provider)
        changed += [(incident.pk, RESOLVE)] if incident else []
    elif event.kind == FailoverEvent.Kind.ALL_FAILED:
        incident = incident_open(kind=Kind.ROUTE_DOWN, subject=event.route, detail=event.detail)
        changed += [(incident.pk, OPEN)] if incident else []
    return changed


@dataclass(frozen=True)
class FailoverRate:
    requests: int
    failovers: int

    @property
    def percent(self) -> float:
        return 100.0 * self.failovers / self.requests if self.requests else 0.0


def failover_rate(*, since: datetime) -> FailoverRate:
    """Requests and failovers since `since`. A request makes one first attempt on
    each provider it reaches, so requests = first attempts - failovers."""
    attempts = (
        CallBucket.objects.filter(bucket_start__gte=since).aggregate(n=Sum("first_attempts"))["n"]
        or 0
    )
    failovers = (
        FailoverEvent.objects.filter(
            kind=FailoverEvent.Kind.FAILOVER, created_at__gte=since
        ).aggregate(n=Sum("count"))["n"]
        or 0
    )
    return FailoverRate(requests=max(int(attempts) - failovers, 0), failovers=failovers)


def alerts_evaluate() -> list[tuple[int, str]]:
    """The periodic checks (Celery beat): the failover rate, and route-down
    incidents whose route stopped failing. Returns the (incident id, phase) to send."""
    now = get_clock().now()
    since = now - timedelta(seconds=get_setting("ALERT_WINDOW_S"))
    changed: list[tuple[int, str]] = []

    rate = failover_rate(since=since)
    threshold = get_setting("ALERT_FAILOVER_RATE")
    if rate.requests >= get_setting("ALERT_MIN_REQUESTS") and rate.percent > threshold:
        incident = incident_open(
            kind=Kind.FAILOVER_RATE,
            subject="",
            detail=(
                f"{rate.percent:.0f} % of {rate.requests} requests failed over in the last "
                f"{get_setting('ALERT_WINDOW_S'):.0f} s (threshold {threshold:g} %)"
            ),
        )
        changed += [(incident.pk, OPEN)] if incident else []
    elif rate.percent <= threshold:
        incident = incident_resolve(kind=Kind.FAILOVER_RATE, subject="")
        changed += [(incident.pk, RESOLVE)] if incident else []

    still_failing = set(
        FailoverEvent.objects.filter(
            kind=FailoverEvent.Kind.ALL_FAILED, created_at__gte=since
        ).values_list("route", flat=True)
    )
    down = AlertIncident.objects.filter(kind=Kind.ROUTE_DOWN, resolved_at=None)
    for route in down.exclude(subject__in=still_failing).values_list("subject", flat=True):
        incident = incident_resolve(kind=Kind.ROUTE_DOWN, subject=route)
        changed += [(incident.pk, RESOLVE)] if incident else []
    return changed


# ---------------------------------------------------------------------------
# Delivery
# ---------------------------------------------------------------------------


def alert_text(incident: AlertIncident, phase: str) -> str:
    what = {
        Kind.BREAKER_OPEN: f"provider {incident.subject}: breaker open",
        Kind.ROUTE_DOWN: f"route {incident.subject}: every provider down",
        Kind.FAILOVER_RATE: "failover rate over the threshold",
    }[incident.kind]
    if phase == RESOLVE:
        return f"[LLM fallback] RESOLVED {what} (since {incident.opened_at:%H:%M:%S} UTC)"
    return f"[LLM fallback] {what}. {incident.detail}".strip()


def alert_deliver(*, incident_id: int, phase: str) -> int:
    """Send the incident's open or resolve message once; returns the channels reached."""
    incident = AlertIncident.objects.filter(pk=incident_id).first()
    if incident is None:
        return 0
    sent_flag = "open_sent" if phase == OPEN else "resolve_sent"
    # Claim the message first: a task run twice (Celery's at-least-once) sends it once.
    if not AlertIncident.objects.filter(pk=incident_id, **{sent_flag: False}).update(
        **{sent_flag: True}
    ):
        return 0
    channels = AlertChannel.objects.filter(enabled=True, **{CHANNEL_SWITCH[incident.kind]: True})
    return _send_to(channels, alert_text(incident, phase))


def alert_test_send(channel: AlertChannel) -> None:
    """The admin's "send a test alert": raises AlertDeliveryError naming the problem."""
    _send(channel, f"[LLM fallback] test alert from channel {channel.name}: delivery works.")


def _send_to(channels, text: str) -> int:
    reached = 0
    for channel in channels:
        try:
            _send(channel, text)
            reached += 1
        except AlertDeliveryError as error:
            logger.warning("alert not delivered channel=%s: %s", channel.name, error)
            metrics.store_error("alert_delivery")
    return reached


def _send(channel: AlertChannel, text: str) -> None:
    if channel.kind == AlertChannel.Kind.EMAIL:
        try:
            send_mail(
                subject=text[:120],
                message=text,
                from_email=None,
                recipient_list=channel.recipients(),
            )
        except Exception as exc:  # SMTP errors have no common base class
            raise AlertDeliveryError(f"email failed: {type(exc).__name__}") from exc
        return
    _post_webhook(channel, text)


def _post_webhook(channel: AlertChannel, text: str) -> None:
    secret = os.environ.get(channel.secret_env, "") if channel.secret_env else ""
    if channel.secret_env and not secret:
        raise AlertDeliveryError(f"the variable {channel.secret_env} is not set")
    url, headers = channel.url, {"Content-Type": "application/json"}
    if SECRET_PLACEHOLDER in url:
        url = url.replace(SECRET_PLACEHOLDER, secret)
    elif secret:
        headers["Authorization"] = f"Bearer {secret}"
    # The stored URL was checked when saved; the policy may have changed since, and
    # the secret is now part of it: the same rule again, at send time.
    problem = base_url_refusal(url)
    if problem:
        problem = problem.replace("base URL", "webhook URL")
        raise AlertDeliveryError(problem.replace(secret, "***") if secret else problem)
    try:
        response = requests.post(
            url,
            json={"text": text},
            headers=headers,
            timeout=get_setting("ALERT_TIMEOUT_S"),
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        raise AlertDeliveryError(f"webhook unreachable: {type(exc).__name__}") from exc
    if not 200 <= response.status_code < 300:
        raise AlertDeliveryError(
            f"webhook answered {response.status_code} (redirects not followed)"
        )
