"""Receivers: state rows for new providers, a routing change on every edit, a
client key's route limit kept once set, and alert incidents from events."""

import logging

from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import receiver

from .engine.routing import routing_changed
from .models import ClientKey, FailoverEvent, Provider
from .services.alerts import incidents_from_event
from .services.providers import provider_state_rows_create

logger = logging.getLogger("providers_app.alerts")

# The event kinds that open or resolve an alert incident (services/alerts.py).
ALERTING_KINDS = frozenset(
    {
        FailoverEvent.Kind.BREAKER_OPENED,
        FailoverEvent.Kind.BREAKER_CLOSED,
        FailoverEvent.Kind.ALL_FAILED,
        FailoverEvent.Kind.MANUAL,
    }
)


@receiver(post_save, sender=Provider, dispatch_uid="provider_saved")
def provider_saved(sender, instance: Provider, created: bool, raw: bool, **kwargs) -> None:
    if created and not raw:
        provider_state_rows_create(provider=instance)
    routing_changed()


@receiver(post_delete, sender=Provider, dispatch_uid="provider_deleted")
def provider_deleted(sender, instance: Provider, **kwargs) -> None:
    routing_changed()


@receiver(post_save, sender=FailoverEvent, dispatch_uid="event_alerts")
def event_alerts(sender, instance: FailoverEvent, created: bool, raw: bool, **kwargs) -> None:
    """A breaker transition or an all-failed request may open or resolve an
    incident; its alert goes out on Celery once the event is committed."""
    if not created or raw or instance.kind not in ALERTING_KINDS:
        return
    from .tasks import deliver_alert  # tasks import the services this module imports

    try:
        with transaction.atomic():  # a savepoint: a failure here never poisons the caller's
            changed = incidents_from_event(instance)
    except Exception:  # alerting must never fail the request or the transition
        logger.exception("alert incident update failed for event %s", instance.pk)
        return
    for incident_id, phase in changed:
        transaction.on_commit(
            lambda i=incident_id, p=phase: deliver_alert.delay(incident_id=i, phase=p)
        )


@receiver(m2m_changed, sender=ClientKey.routes.through, dispatch_uid="client_key_routes_added")
def client_key_routes_added(sender, instance, action: str, reverse: bool, pk_set, **kwargs) -> None:
    """However a route limit is added (admin, service, ORM), the key is limited from
    then on; deleting its routes later leaves it limited to what is left (fail closed)."""
    if action != "post_add" or not pk_set:
        return
    keys = ClientKey.objects.filter(pk__in=pk_set) if reverse else [instance]
    ClientKey.objects.filter(pk__in=[key.pk for key in keys]).update(limited_to_routes=True)
