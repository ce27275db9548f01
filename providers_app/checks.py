"""System checks for what breaks quietly in production (`manage.py check`)."""

import os

from django.core.checks import Tags, Warning, register
from django.db import DatabaseError

PROCESS_LOCAL_CACHES = (
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
)


@register(Tags.compatibility)
def check_api_key_variables(app_configs, **kwargs):
    """W001: an enabled provider names a key variable that is not set."""
    from .models import Provider

    try:
        providers = list(
            Provider.objects.enabled().exclude(api_key_env="").only("name", "api_key_env")
        )
    except DatabaseError:
        return []  # not migrated yet: nothing to check
    return [
        Warning(
            f"Provider {p.name!r} reads its API key from ${p.api_key_env}, which is not set.",
            hint=f"Export {p.api_key_env} in the environment of the web and worker processes.",
            obj=p,
            id="providers_app.W001",
        )
        for p in providers
        if not os.environ.get(p.api_key_env)
    ]
