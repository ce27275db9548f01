"""GET /v1/models and GET /api/status."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from providers_app.engine import counters, fallback
from providers_app.models import CallBucket
from tests.factories import provider_create

HELLO = [{"role": "user", "content": "Say hello."}]


def test_models_without_routes_lists_fallback_in_the_order_added(client, auth, providers):
    providers[0].delete()  # "primary" added again: now after "secondary"
    provider_create(name="primary", base_url="http://127.0.0.1:9/v1")
    provider_create(name="off", enabled=False)

    body = client.get("/v1/models", headers=auth).json()

    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == ["fallback"]
    assert body["data"][0]["object"] == "model"
    assert body["data"][0]["default"] is True
    assert body["data"][0]["providers"] == ["secondary", "primary"]


def test_models_needs_a_key(client, providers):
    response = client.get("/v1/models")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "missing_api_key"


def test_models_refuses_post_with_a_json_405(client, auth):
    response = client.post("/v1/models", headers=auth)
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


# ---------------------------------------------------------------------------
# /api/status
# ---------------------------------------------------------------------------


@pytest.fixture
def staff_client(client, db):
    user = get_user_model().objects.create_user("ops", password="pw", is_staff=True)
    client.force_login(user)
    return client


def test_status_needs_staff_or_a_key(client, db):
    assert client.get("/api/status").status_code == 401
    user = get_user_model().objects.create_user("someone", password="pw")
    client.force_login(user)
    response = client.get("/api/status")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "missing_api_key"


def test_status_accepts_a_client_key(client, auth, providers):
    assert client.get("/api/status", headers=auth).status_code == 200


def test_status_lists_every_provider_in_order_with_breaker_and_cooldown(
    staff_client, providers, primary, secondary
):
    provider_create(name="standby", enabled=False)
    primary.set_fault("rate_limit", retry_after="30")
    assert fallback.complete(HELLO).provider == "secondary"  # primary now cooling down

    body = staff_client.get("/api/status").json()

    names = [p["name"] for p in body["providers"]]
    assert names == ["primary", "secondary", "standby"]
    first, second, standby = body["providers"]
    assert first["breaker"]["state"] == "closed"
    assert first["cooldown"]["active"] is True
    assert 20 <= first["cooldown"]["remaining_s"] <= 30
    assert second["cooldown"]["active"] is False
    assert standby["enabled"] is False
    assert body["window_s"] == 300


def test_status_success_rate_covers_the_last_five_minutes(staff_client, providers):
    first, _ = providers
    now = timezone.now()
    counters.discard_pending()
    CallBucket.objects.create(provider=first, bucket_start=now - timedelta(minutes=1), successes=3)
    CallBucket.objects.create(
        provider=first, bucket_start=now - timedelta(minutes=2), shard=1, failures=1
    )
    CallBucket.objects.create(  # too old to count
        provider=first, bucket_start=now - timedelta(minutes=6), failures=50
    )

    recent = staff_client.get("/api/status").json()["providers"][0]["recent"]

    assert recent["calls"] == 4
    assert recent["success_rate"] == 0.75
    second = staff_client.get("/api/status").json()["providers"][1]["recent"]
    assert second["success_rate"] is None  # no calls: unknown, not 0 %


def test_status_shows_an_open_breaker(staff_client, providers, primary, settings):
    settings.FALLBACK_BREAKER_FAILURE_THRESHOLD = 1
    primary.set_fault("error", status=500)
    fallback.complete(HELLO)

    first = staff_client.get("/api/status").json()["providers"][0]

    assert first["breaker"]["state"] == "open"
    assert first["breaker"]["open_until"] is not None
    assert first["recent"]["failures"] == 1


def test_status_shows_the_capabilities_in_force(staff_client, db):
    provider_create(
        name="claude", kind="anthropic", model="claude-opus-4-6",
        api_key_env="FB_TEST_ANTHROPIC_KEY",
    )  # fmt: skip
    provider_create(
        name="compatible", model="m", continuation="trailing_assistant", supports_images=False
    )

    claude, compatible = staff_client.get("/api/status").json()["providers"]

    assert claude["capabilities"] == {
        "tools": True,
        "structured_output": True,
        "images": True,
        "prefill": False,  # Claude 4.6 refuses a prefill: the default
    }
    assert (compatible["capabilities"]["prefill"], compatible["capabilities"]["images"]) == (
        True,
        False,
    )  # the operator's switches
