"""Small helpers that create valid rows; each test says only what it cares about."""

import itertools

from providers_app.models import Provider

_sequence = itertools.count(1)


def provider_create(**fields) -> Provider:
    n = next(_sequence)
    values = {
        "name": f"provider-{n}",
        "kind": Provider.Kind.OPENAI_COMPATIBLE,
        "base_url": "http://127.0.0.1:9/v1",
        "model": "test-model",
        "timeout_s": 5.0,
    }
    values.update(fields)
    provider = Provider(**values)
    provider.full_clean()
    provider.save()
    return provider


def provider_admin_form(**overrides) -> dict:
    """The provider admin form's POST data for a valid OpenAI provider; overrides win."""
    return {
        "name": "new-one",
        "kind": "openai",
        "base_url": "https://api.openai.com/v1",
        "model": "gpt-4o-mini",
        "api_key_env": "OPENAI_API_KEY",
        "enabled": "on",
        "timeout_s": "30",
        "max_attempts": "2",
        "extra": "{}",
        **overrides,
    }
