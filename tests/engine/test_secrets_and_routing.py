"""No key reaches events, breaker state or logs; the routing snapshot cache obeys its token."""

import logging

from providers_app.engine import fallback
from providers_app.engine.routing import routing_snapshot
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
        api_key_env="FB_TEST_OPENAI_KEY", priority=1, max_attempts=1,
    )  # fmt: skip
    provider_create(name="secondary", base_url=secondary.base_url, priority=2)
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


def test_routing_cache_is_reused_until_the_change_token_moves(
    db, settings, django_assert_num_queries, django_capture_on_commit_callbacks
):
    settings.FALLBACK_ROUTING_CACHE_S = 60.0
    first = provider_create(name="a", priority=1)
    provider_create(name="b", priority=2)
    assert [e.name for e in routing_snapshot()] == ["a", "b"]
    with django_assert_num_queries(0):
        assert [e.name for e in routing_snapshot()] == ["a", "b"]

    with django_capture_on_commit_callbacks(execute=True):
        first.priority = 3
        first.save()  # an admin save bumps the token once it commits

    assert [e.name for e in routing_snapshot()] == ["b", "a"]
