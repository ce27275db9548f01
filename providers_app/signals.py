"""Receivers: state rows for new providers, and a routing change on every edit."""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from .engine.routing import routing_changed
from .models import Provider
from .services.providers import provider_state_rows_create


@receiver(post_save, sender=Provider, dispatch_uid="provider_saved")
def provider_saved(sender, instance: Provider, created: bool, raw: bool, **kwargs) -> None:
    if created and not raw:
        provider_state_rows_create(provider=instance)
    routing_changed()


@receiver(post_delete, sender=Provider, dispatch_uid="provider_deleted")
def provider_deleted(sender, instance: Provider, **kwargs) -> None:
    routing_changed()
