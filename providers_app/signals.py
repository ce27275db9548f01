"""Receivers: state rows for new providers, a routing change on every edit, and a
client key's route limit kept once set."""

from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import receiver

from .engine.routing import routing_changed
from .models import ClientKey, Provider
from .services.providers import provider_state_rows_create


@receiver(post_save, sender=Provider, dispatch_uid="provider_saved")
def provider_saved(sender, instance: Provider, created: bool, raw: bool, **kwargs) -> None:
    if created and not raw:
        provider_state_rows_create(provider=instance)
    routing_changed()


@receiver(post_delete, sender=Provider, dispatch_uid="provider_deleted")
def provider_deleted(sender, instance: Provider, **kwargs) -> None:
    routing_changed()


@receiver(m2m_changed, sender=ClientKey.routes.through, dispatch_uid="client_key_routes_added")
def client_key_routes_added(sender, instance, action: str, reverse: bool, pk_set, **kwargs) -> None:
    """However a route limit is added (admin, service, ORM), the key is limited from
    then on; deleting its routes later leaves it limited to what is left (fail closed)."""
    if action != "post_add" or not pk_set:
        return
    keys = ClientKey.objects.filter(pk__in=pk_set) if reverse else [instance]
    ClientKey.objects.filter(pk__in=[key.pk for key in keys]).update(limited_to_routes=True)
