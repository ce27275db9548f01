"""Outbound policy: what a provider row may make this server send, and where.

A provider editor chooses an environment variable whose value is sent as a
Bearer key to a URL they also choose. Without limits that sends any server
secret (DJANGO_SECRET_KEY, DATABASE_URL, cloud credentials) to any host. The
rules here are the only copy: the model's validation, the admin form, `providers
import`, the system check and the adapter pool (at call time) all ask them.

- Key variables must match an allow pattern (FALLBACK_KEY_ENV_ALLOW) or be
  listed in FALLBACK_KEY_ENV_ALLOW_NAMES, and must match no deny pattern.
  The built-in deny list always applies; FALLBACK_KEY_ENV_DENY adds to it.
- Base URLs carry no credentials (`user:pass@`), query string or fragment;
  with FALLBACK_UPSTREAM_HOSTS set, their host must match one of its patterns.
- `extra.headers` and `extra.params` hold no credential-looking name: a key
  comes from `api_key_env` only.
- A key variable reaches only the hosts it is bound to: each vendor's own
  variable its own hosts (BUILTIN_KEY_HOSTS), any other variable the hosts
  FALLBACK_KEY_HOSTS names for it (`VLLM_API_KEY=vllm.internal|10.0.0.*`). A
  variable bound nowhere is sent nowhere; a binding to `*` is open, and
  `check --deploy` says so (providers_app.W011).
"""

import re
from fnmatch import fnmatchcase
from functools import lru_cache
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError

from .conf import get_setting

# Variables that hold server secrets or connection strings. Always refused, even
# when an allow pattern (such as *_KEY) matches: deny wins.
BUILTIN_KEY_ENV_DENY = (
    "DJANGO_*",
    "FALLBACK_*",  # this app's own settings, e.g. FALLBACK_METRICS_TOKEN
    "AXES_*",
    "CELERY_*",
    "DATABASE_*",
    "*_DATABASE_URL",
    "REDIS_*",
    "CACHE_URL",
    "*_URL",  # connection strings embed passwords
    "*_DSN",
    "*SECRET*",
    "*PASSWORD*",
    "*PASSWD*",
    "*PRIVATE*",
    "AWS_*",
    "AZURE_CLIENT_*",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "GCP_*",
    "SSH_*",
    "GPG_*",
    "GITHUB_*",
    "PROMETHEUS_*",
)

# Header and query-parameter names that carry a credential: the key must come
# from `api_key_env`, where the rule above applies, never from `extra`.
CREDENTIAL_NAME = re.compile(
    r"key|token|secret|passw|auth|credential|signature|cookie|session|^sig$|^code$",
    re.IGNORECASE,
)


# Each vendor kind's key variable and the vendor's own hosts (docs/vendors.md).
BUILTIN_KEY_HOSTS: dict[str, tuple[str, ...]] = {
    "OPENAI_API_KEY": ("api.openai.com",),
    "ANTHROPIC_API_KEY": ("api.anthropic.com",),
    "GEMINI_API_KEY": ("generativelanguage.googleapis.com",),
    "GOOGLE_API_KEY": ("generativelanguage.googleapis.com",),
    "AZURE_OPENAI_API_KEY": ("*.openai.azure.com", "*.cognitiveservices.azure.com"),
}
OPEN_HOST = "*"


def _listed(setting: str) -> tuple[str, ...]:
    """A list setting's entries, trimmed ("a, b" from the environment), empties dropped."""
    return tuple(str(item).strip() for item in get_setting(setting) if str(item).strip())


def key_env_denied_by(name: str) -> str | None:
    """The deny pattern `name` matches, or None."""
    return _denied_by(name, _listed("KEY_ENV_DENY"))


def key_env_allowed(name: str) -> bool:
    """Whether the variable `name` may be sent to a provider as its API key."""
    # Asked on every attempt (adapter pool): the decision is cached per name and settings.
    return _allowed(
        name, _listed("KEY_ENV_ALLOW"), _listed("KEY_ENV_ALLOW_NAMES"), _listed("KEY_ENV_DENY")
    )


@lru_cache(maxsize=512)
def _denied_by(name: str, extra_deny: tuple[str, ...]) -> str | None:
    patterns = (*BUILTIN_KEY_ENV_DENY, *extra_deny)
    return next((p for p in patterns if fnmatchcase(name.upper(), p.upper())), None)


@lru_cache(maxsize=512)
def _allowed(
    name: str, allow: tuple[str, ...], names: tuple[str, ...], deny: tuple[str, ...]
) -> bool:
    if not name or _denied_by(name, deny):
        return False
    return name in names or any(fnmatchcase(name.upper(), p.upper()) for p in allow)


def key_env_refusal(name: str) -> str | None:
    """Why `name` may not be a key variable (naming the rule), or None when it may."""
    if not name:
        return None
    denied = key_env_denied_by(name)
    if denied:
        return (
            f"{name} matches the deny pattern {denied!r}: it holds a server secret, not a "
            "provider key, and is never sent upstream (FALLBACK_KEY_ENV_DENY)."
        )
    if not key_env_allowed(name):
        allowed = ", ".join([*_listed("KEY_ENV_ALLOW"), *_listed("KEY_ENV_ALLOW_NAMES")])
        return (
            f"{name} matches no allowed key-variable pattern ({allowed}); rename the "
            "variable or add it to FALLBACK_KEY_ENV_ALLOW_NAMES."
        )
    return None


def key_bindings() -> dict[str, tuple[str, ...]]:
    """Variable (or variable pattern) -> the host patterns its value may be sent to:
    the built-in vendor bindings plus FALLBACK_KEY_HOSTS (whose hosts add to them)."""
    return _bindings(_listed("KEY_HOSTS"))


@lru_cache(maxsize=16)
def _bindings(entries: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    bindings = dict(BUILTIN_KEY_HOSTS)
    for entry in entries:
        name, _, hosts = entry.partition("=")
        patterns = tuple(h.strip().lower() for h in hosts.split("|") if h.strip())
        if name.strip() and patterns:
            bindings[name.strip()] = (*bindings.get(name.strip(), ()), *patterns)
    return bindings


def key_hosts(name: str) -> tuple[str, ...]:
    """The host patterns the variable `name` is bound to (none: it is sent nowhere)."""
    return tuple(
        host
        for variable, hosts in key_bindings().items()
        if fnmatchcase(name.upper(), variable.upper())
        for host in hosts
    )


def key_binding_refusal(name: str, base_url: str) -> str | None:
    """Why the value of `name` may not be sent to `base_url`'s host, or None when it may."""
    if not name:
        return None
    try:
        host = (urlsplit(base_url).hostname or "").lower()
    except ValueError:
        return None  # the URL validator reports malformed URLs
    return _binding_refusal(name, host, _listed("KEY_HOSTS"))


@lru_cache(maxsize=512)
def _binding_refusal(name: str, host: str, entries: tuple[str, ...]) -> str | None:
    # Asked on every attempt (adapter pool): cached per name, host and settings.
    hosts = key_hosts(name)
    if not hosts:
        return (
            f"{name} is bound to no host, so it is sent nowhere: name its hosts in "
            f"FALLBACK_KEY_HOSTS ({name}=host.example.com)."
        )
    if not any(fnmatchcase(host, pattern) for pattern in hosts):
        return (
            f"{name} may be sent only to {', '.join(hosts)}, not to {host or 'this URL'} "
            "(FALLBACK_KEY_HOSTS binds other hosts)."
        )
    return None


def open_key_bindings() -> list[str]:
    """Variables bound to any host at all (`*`): what `check --deploy` warns about."""
    return sorted(name for name, hosts in key_bindings().items() if OPEN_HOST in hosts)


def validate_key_env(value: str) -> None:
    problem = key_env_refusal(value)
    if problem:
        raise ValidationError(problem, code="key_env_refused")


def upstream_host_allowed(host: str) -> bool:
    """True unless FALLBACK_UPSTREAM_HOSTS is set and no pattern in it matches `host`."""
    patterns = _listed("UPSTREAM_HOSTS")
    return not patterns or any(fnmatchcase(host.lower(), p.lower()) for p in patterns)


def base_url_refusal(value: str) -> str | None:
    """Why a syntactically valid http(s) `value` may not be a provider's base URL."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return None  # the URL validator reports malformed URLs
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        return (
            "The base URL must not carry credentials (user:password@); name the key's "
            "environment variable in api_key_env."
        )
    if parts.query or value.rstrip().endswith("?"):
        return 'The base URL must not have a query string; put parameters in extra {"params": ...}.'
    if parts.fragment:
        return "The base URL must not have a fragment (#...)."
    if parts.hostname and not upstream_host_allowed(parts.hostname):
        return (
            f"{parts.hostname} is not in FALLBACK_UPSTREAM_HOSTS "
            f"({', '.join(_listed('UPSTREAM_HOSTS'))})."
        )
    return None


def validate_base_url_policy(value: str) -> None:
    problem = base_url_refusal(value)
    if problem:
        raise ValidationError(problem, code="base_url_refused")


def extra_credential_names(extra: object) -> dict[str, list[str]]:
    """Header and parameter names in `extra` that look like credentials, by section."""
    found: dict[str, list[str]] = {}
    if not isinstance(extra, dict):
        return found
    for section in ("headers", "params"):
        value = extra.get(section)
        if isinstance(value, dict):
            names = sorted(str(n) for n in value if CREDENTIAL_NAME.search(str(n)))
            if names:
                found[section] = names
    return found


def provider_outbound_problems(*, api_key_env: str, base_url: str, extra: object) -> list[str]:
    """Every rule a stored provider breaks (system check and call-time guard)."""
    problems = [p for p in (key_env_refusal(api_key_env), base_url_refusal(base_url)) if p]
    if api_key_env and not problems:
        binding = key_binding_refusal(api_key_env, base_url)
        if binding:
            problems.append(binding)
    for section, names in extra_credential_names(extra).items():
        problems.append(f"extra.{section} names a credential: {', '.join(names)}.")
    return problems
