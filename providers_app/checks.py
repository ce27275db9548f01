"""System checks for what breaks quietly in production (`manage.py check`)."""

import os

from django.conf import settings
from django.core.checks import Tags, Warning, register
from django.db import DatabaseError

from .conf import get_setting

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


@register(Tags.caches, deploy=True)
def check_shared_cache(app_configs, **kwargs):
    """W002: the routing cache would rely on a cache that other processes cannot see."""
    backend = settings.CACHES.get("default", {}).get("BACKEND", "")
    if settings.DEBUG or get_setting("ROUTING_CACHE_S") <= 0 or backend not in PROCESS_LOCAL_CACHES:
        return []
    return [
        Warning(
            "FALLBACK_ROUTING_CACHE_S is on but the default cache is process-local, so an "
            "admin reorder or a breaker transition in one process stays invisible to others "
            "until their snapshot expires.",
            hint="Set CACHE_URL to Redis (redis://127.0.0.1:6379/1) or FALLBACK_ROUTING_CACHE_S=0.",
            id="providers_app.W002",
        )
    ]
