"""Celery tasks: thin shells around the health and housekeeping services.

Beat runs the periodic ones from django-celery-beat's database schedule
(`manage.py setup_periodic_tasks` declares and installs them). Every task is
safe to run twice or late: the health check takes a database lease, the
roll-up is idempotent, pruning deletes by age.
"""

import logging

from celery import shared_task

from .services import alerts, health, housekeeping

logger = logging.getLogger("providers_app.tasks")


@shared_task(name="providers_app.tasks.dispatch_health_checks", ignore_result=True)
def dispatch_health_checks() -> int:
    """Enqueue a check for every provider that is due. Each check expires after
    one dispatch interval: a backlog is dropped, the next dispatch re-enqueues."""
    expires = health.health_dispatch_interval_s()
    due = health.health_due_provider_ids()
    for provider_id in due:
        check_provider_health.apply_async(args=(provider_id,), expires=expires)
    return len(due)


@shared_task(name="providers_app.tasks.check_provider_health", ignore_result=True)
def check_provider_health(provider_id: int) -> bool:
    """Check one provider unless another check holds its lease or it is not due."""
    return health.health_check_run(provider_id=provider_id).checked


@shared_task(name="providers_app.tasks.roll_up_call_counters", ignore_result=True)
def roll_up_call_counters() -> int:
    """Hourly rows for the charts; prunes the one-second buckets of finished hours;
    folds the usage ledger's shards of finished days."""
    housekeeping.usage_ledger_roll_up()
    return housekeeping.call_counters_roll_up().hours


@shared_task(name="providers_app.tasks.prune_history", ignore_result=True)
def prune_history() -> int:
    """Delete events and health results past FALLBACK_EVENT_RETENTION_DAYS, and the
    probe leases of half-open rounds that are over."""
    summary = housekeeping.history_prune()
    return summary.events + summary.health_results + summary.rollups + summary.probe_leases


@shared_task(name="providers_app.tasks.flush_counters", ignore_result=True)
def flush_counters() -> None:
    """Write the buffered call counters of the worker process that runs this."""
    housekeeping.counters_flush()


@shared_task(name="providers_app.tasks.deliver_alert", ignore_result=True)
def deliver_alert(*, incident_id: int, phase: str) -> int:
    """Send one incident's open or resolve alert to its channels (once)."""
    return alerts.alert_deliver(incident_id=incident_id, phase=phase)


@shared_task(name="providers_app.tasks.evaluate_alerts", ignore_result=True)
def evaluate_alerts() -> int:
    """The failover-rate check and the end of route-down incidents; alerts what changed."""
    changed = alerts.alerts_evaluate()
    for incident_id, phase in changed:
        deliver_alert.delay(incident_id=incident_id, phase=phase)
    return len(changed)
