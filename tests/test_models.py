"""Provider validation: every invalid value is refused with a message naming the field."""

import pytest
from django.core.exceptions import ValidationError

from providers_app.models import BreakerState, HealthCheckSchedule, Provider

VALID = {
    "name": "openai-main",
    "kind": "openai",
    "base_url": "https://api.openai.com/v1",
    "model": "gpt-4o-mini",
    "api_key_env": "OPENAI_API_KEY",
}

INVALID = [
    ({"base_url": "ftp://example.com"}, "base_url", "http"),
    ({"base_url": "not a url"}, "base_url", "http"),
    ({"timeout_s": 0}, "timeout_s", "greater than or equal"),
    ({"timeout_s": 46}, "timeout_s", "deadline"),
    ({"max_attempts": 0}, "max_attempts", "greater than or equal"),
    ({"max_attempts": 11}, "max_attempts", "less than or equal"),
    ({"api_key_env": "sk-live key"}, "api_key_env", "environment variable"),
    ({"api_key_env": "1ABC"}, "api_key_env", "environment variable"),
    ({"api_key_env": ""}, "api_key_env", "needs the name"),
    ({"failure_rate_threshold": 0}, "failure_rate_threshold", "greater than or equal"),
    ({"failure_rate_threshold": 101}, "failure_rate_threshold", "less than or equal"),
    ({"slow_call_rate_threshold": 150}, "slow_call_rate_threshold", "less than or equal"),
    ({"half_open_probes": 0}, "half_open_probes", "greater than or equal"),
    ({"half_open_probes": 11}, "half_open_probes", "less than or equal"),
    ({"open_base_s": 600, "open_max_s": 60}, "open_base_s", "must not exceed"),
    ({"kind": "azure_openai", "base_url": "https://x.openai.azure.com"}, "extra", "api-version"),
    ({"extra": {"headers": {"Authorization": "Bearer x"}}}, "extra", "credential"),
    ({"extra": {"headers": {"x-api-key": "x"}}}, "extra", "credential"),
    ({"extra": {"whatever": 1}}, "extra", "Unknown keys"),
    ({"extra": {"params": {"a": 1}}}, "extra", "strings to strings"),
    ({"extra": []}, "extra", "JSON object"),
    ({"kind": "nonsense"}, "kind", "not a valid choice"),
]


@pytest.mark.parametrize(("changes", "field", "message"), INVALID)
def test_invalid_value_is_refused_naming_the_field(db, changes, field, message):
    provider = Provider(**{**VALID, **changes})
    with pytest.raises(ValidationError) as excinfo:
        provider.full_clean()
    assert field in excinfo.value.message_dict
    assert message in " ".join(excinfo.value.message_dict[field])


def test_valid_configurations_pass(db):
    Provider(**VALID).full_clean()
    Provider(
        **{
            **VALID,
            "kind": "azure_openai",
            "base_url": "https://x.openai.azure.com",
            "extra": {"params": {"api-version": "2024-10-21"}},
        }
    ).full_clean()
    Provider(
        **{**VALID, "kind": "azure_openai", "base_url": "https://x.openai.azure.com/openai/v1"}
    ).full_clean()
    Provider(
        **{**VALID, "kind": "ollama", "api_key_env": "", "base_url": "http://localhost:11434"}
    ).full_clean()


def test_new_provider_gets_closed_breaker_and_health_schedule(make_provider):
    provider = make_provider()
    assert BreakerState.objects.get(provider=provider).state == BreakerState.State.CLOSED
    assert HealthCheckSchedule.objects.filter(provider=provider).exists()
