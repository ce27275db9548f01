"""No key reaches events, breaker state or logs."""

import logging

from providers_app.engine import fallback
from providers_app.models import BreakerState, FailoverEvent
from tests.factories import provider_create

from .conftest import HELLO

SECRET = "sk-proj-ThisIsTheLiveKey0123456789abcdef"


def test_an_echoed_key_never_reaches_events_state_or_logs(
    db, primary, secondary, monkeypatch, caplog
):
    monkeypatch.setenv("FB_TEST_OPENAI_KEY", SECRET)
    provider_create(
        name="openai", kind="openai", base_url=primary.base_url,
        api_key_env="FB_TEST_OPENAI_KEY", max_attempts=1,
    )  # fmt: skip
    provider_create(name="secondary", base_url=secondary.base_url)
    primary.set_fault("error", status=401, message=f"Incorrect API key provided: {SECRET}.")
    caplog.set_level(logging.DEBUG)

    result = fallback.complete(HELLO)

    assert result.provider == "secondary"
    assert primary.last_request["headers"].get("Authorization") == f"Bearer {SECRET}"
    stored = [
        *FailoverEvent.objects.values_list("detail", "reason"),
        *BreakerState.objects.values_list("last_error", "state"),
    ]
    assert stored, "the failure was recorded"
    assert all(SECRET not in str(row) for row in stored)
    assert SECRET not in caplog.text
    assert all(SECRET not in str(reason) for reason in result.failures)
