"""System checks for what breaks quietly in production (`manage.py check`)."""

import os

from django.core.checks import Tags, Warning, register
from django.db import DatabaseError

from .outbound import key_env_allowed, open_key_bindings, provider_outbound_problems


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
        if not os.environ.get(p.api_key_env) and key_env_allowed(p.api_key_env)
    ]


@register(Tags.security)
def check_outbound_policy(app_configs, **kwargs):
    """W010: a stored provider breaks the outbound policy (providers_app/outbound.py).

    Rows saved before the policy existed, or before a setting tightened it. The
    adapter pool refuses to call such a provider, so nothing leaks meanwhile; the
    warning says which row to fix. A warning and not an error, so `migrate` and
    `providers import` still run to fix it.
    """
    from .models import Provider

    try:
        providers = list(Provider.objects.only("name", "api_key_env", "base_url", "extra"))
    except DatabaseError:
        return []  # not migrated yet: nothing to check
    return [
        Warning(
            f"Provider {p.name!r} breaks the outbound policy: {problem}",
            hint="Fix it in the admin or with `manage.py providers import`; until then "
            "it is never called.",
            obj=p,
            id="providers_app.W010",
        )
        for p in providers
        for problem in provider_outbound_problems(
            api_key_env=p.api_key_env, base_url=p.base_url, extra=p.extra
        )
    ]


@register(Tags.compatibility)
def check_key_concurrency(app_configs, **kwargs):
    """W020: one key's default concurrency could hold every server thread of a process."""
    from fallbackproject.serving import web_threads

    from .conf import get_setting

    threads = web_threads()
    allowed = get_setting("KEY_CONCURRENT_REQUESTS")
    if allowed * 2 <= threads:
        return []
    return [
        Warning(
            f"FALLBACK_KEY_CONCURRENT_REQUESTS={allowed} lets one client key hold more than "
            f"half of a process's {threads} server threads (WEB_THREADS).",
            hint="Keep it well below WEB_THREADS; raise it on the keys that need more.",
            id="providers_app.W020",
        )
    ]


@register(Tags.security, deploy=True)
def check_open_key_bindings(app_configs, **kwargs):
    """W011 (`check --deploy`): a key variable may be sent to any host."""
    return [
        Warning(
            f"FALLBACK_KEY_HOSTS binds {name} to every host ('*'): a provider editor can "
            "send its value to a host of their choice.",
            hint=f"Name the hosts that should receive it: {name}=api.example.com.",
            id="providers_app.W011",
        )
        for name in open_key_bindings()
    ]
