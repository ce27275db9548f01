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
        "priority": 1000 + n,
        "timeout_s": 5.0,
    }
    values.update(fields)
    provider = Provider(**values)
    provider.full_clean()
    provider.save()
    return provider
