"""Per-key fairness through HTTP: one key over its limits gets a 429 naming the limit,
with Retry-After; another key is unaffected. Both counting stores (the database,
and Redis when one answers on the test's DB) run the same tests."""

import json
from datetime import UTC, datetime

import pytest

from providers_app.limits import LimitExceeded, LimitKind, acquire, key_limits
from providers_app.models import ClientKey, LimitLease
from providers_app.services.client_keys import client_key_create
from tests.api.test_chat_completions import close_as_the_server_would

URL = "/v1/chat/completions"
HELLO = [{"role": "user", "content": "Say hello."}]
REDIS_URL = "redis://127.0.0.1:6379/3"
# 12:00:45 UTC: 15 s left in the minute, whatever the hour the test runs.
MOMENT = datetime(2026, 3, 2, 12, 0, 45, tzinfo=UTC)


def _redis_or_skip():
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=0.5)
    try:
        client.ping()
    except redis.RedisError:
        pytest.skip("no Redis at " + REDIS_URL)
    return client


@pytest.fixture(params=["database", "redis"])
def store(request, settings):
    """The counting store under test; Redis's test DB is emptied around each test."""
    if request.param == "redis":
        client = _redis_or_skip()
        client.flushdb()
        settings.FALLBACK_LIMITS_REDIS_URL = REDIS_URL
        yield request.param
        client.flushdb()
    else:
        settings.FALLBACK_LIMITS_REDIS_URL = ""
        yield request.param


@pytest.fixture
def clock(fake_clock):
    fake_clock.set(MOMENT)
    return fake_clock


def _key(name, **limits):
    created = client_key_create(name=name, **limits)
    return created.client_key, {"Authorization": f"Bearer {created.raw_key}"}


def _chat(client, headers, **extra):
    body = {"model": "fallback", "messages": HELLO, **extra}
    return client.post(URL, json.dumps(body), content_type="application/json", headers=headers)


def _limit_error(response, code):
    assert response.status_code == 429, response.content[:300]
    error = response.json()["error"]
    assert set(error) >= {"type", "message", "param", "code"}
    assert error["code"] == code
    return error


def test_a_key_over_its_requests_per_minute_gets_429_and_another_key_is_served(
    client, providers, store, clock
):
    _, noisy = _key("noisy", requests_per_minute=3)
    _, quiet = _key("quiet")

    assert [_chat(client, noisy).status_code for _ in range(3)] == [200, 200, 200]
    refused = _chat(client, noisy)

    error = _limit_error(refused, "requests_per_minute_limit_exceeded")
    assert refused["Retry-After"] == "15"  # the rest of the minute
    assert error["type"] == "rate_limit_exceeded"
    assert error["limit"] == "requests_per_minute"
    assert error["maximum"] == 3
    assert "3 requests per minute" in error["message"]
    assert _chat(client, quiet).status_code == 200

    clock.advance(15)  # the next minute
    assert _chat(client, noisy).status_code == 200


def test_the_default_requests_per_minute_comes_from_settings(
    client, providers, store, clock, settings
):
    settings.FALLBACK_KEY_REQUESTS_PER_MINUTE = 2
    _, headers = _key("defaulted")
    assert [_chat(client, headers).status_code for _ in range(3)] == [200, 200, 429]


def test_a_stream_holds_its_concurrency_slot_until_the_client_hangs_up(
    client, providers, store, clock
):
    _, greedy = _key("greedy", max_concurrent_requests=1)
    _, other = _key("other", max_concurrent_requests=1)

    stream = _chat(client, greedy, stream=True)  # open, not read to its end
    assert stream.status_code == 200

    refused = _chat(client, greedy)
    error = _limit_error(refused, "concurrent_requests_limit_exceeded")
    assert refused["Retry-After"] == "1"
    assert error["limit"] == "concurrent_requests"
    assert "1 concurrent requests" in error["message"]
    assert _chat(client, other).status_code == 200  # its own slot

    close_as_the_server_would(stream)  # the client hung up
    assert _chat(client, greedy).status_code == 200


def test_a_stream_read_to_its_end_gives_its_slot_back(client, providers, store, clock):
    _, headers = _key("streamer", max_concurrent_requests=1)
    for _ in range(3):
        response = _chat(client, headers, stream=True)
        assert b"[DONE]" in b"".join(response.streaming_content)
    assert _chat(client, headers).status_code == 200


def test_plain_answers_and_refused_requests_give_their_slot_back(client, providers, store, clock):
    _, headers = _key("one-at-a-time", max_concurrent_requests=1)
    assert _chat(client, headers).status_code == 200
    assert _chat(client, headers, temperature="hot").status_code == 400  # after the slot
    assert _chat(client, headers, model="no-such-route-xyz").status_code in (200, 404)
    assert _chat(client, headers).status_code == 200


def test_a_slot_whose_holder_died_frees_itself_after_the_lease(
    client, providers, store, clock, settings
):
    key, headers = _key("orphaned", max_concurrent_requests=1)
    acquire(key_limits(key))  # a worker that took the slot and died: never released

    assert _chat(client, headers).status_code == 429
    clock.advance(settings.FALLBACK_LIMIT_LEASE_S + 1)
    assert _chat(client, headers).status_code == 200


def test_a_long_stream_renews_its_slot(providers, store, clock, settings, db):
    key = client_key_create(name="long").client_key
    ClientKey.objects.filter(pk=key.pk).update(max_concurrent_requests=1)
    key.refresh_from_db()
    lease = acquire(key_limits(key))
    for _ in range(4):  # four renewals over two lease lengths
        clock.advance(settings.FALLBACK_LIMIT_LEASE_S / 2)
        lease.renew_if_due()
    with pytest.raises(LimitExceeded) as refused:
        acquire(key_limits(key))
    assert refused.value.limit.kind is LimitKind.CONCURRENT_REQUESTS
    lease.release()
    acquire(key_limits(key)).release()
    if store == "database":
        assert not LimitLease.objects.exists()


def test_the_limits_are_edited_on_the_key_in_its_admin(admin_client, db):
    key = client_key_create(name="tuned").client_key
    response = admin_client.post(
        f"/admin/providers_app/clientkey/{key.pk}/change/",
        {"name": "renamed", "max_concurrent_requests": "4", "requests_per_minute": "40"},
    )
    assert response.status_code == 302, response.content[:500]
    key.refresh_from_db()
    assert (key.name, key.max_concurrent_requests, key.requests_per_minute) == ("tuned", 4, 40)

    refused = admin_client.post(
        f"/admin/providers_app/clientkey/{key.pk}/change/",
        {"max_concurrent_requests": "0", "requests_per_minute": ""},
    )
    assert refused.status_code == 200
    assert "Ensure this value is greater than or equal to 1" in refused.content.decode()
