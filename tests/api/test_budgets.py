"""Budgets per client key and per route, through HTTP: tokens per minute and a
monthly spend limit; over one, a 429 with Retry-After and an OpenAI-shaped error
naming the limit. The clock is pinned; counts come from the simulated vendor."""

import json
import os
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from providers_app.engine.budgets import reservation_tokens
from providers_app.engine.fallback import build_request
from providers_app.models import ClientKey, LimitCounter, Route
from providers_app.services.routes import route_create

URL = "/v1/chat/completions"
HELLO = [{"role": "user", "content": "Say hello."}]
MAX_TOKENS = 20
NOON_30 = datetime(2026, 3, 10, 12, 0, 30, tzinfo=UTC)


@pytest.fixture
def clock(fake_clock):
    fake_clock.set(NOON_30)
    return fake_clock


def _post(client, auth, **fields):
    body = {"model": "default", "messages": HELLO, "max_tokens": MAX_TOKENS, **fields}
    return client.post(URL, body, content_type="application/json", headers=auth)


KINDS = {"tokens": "tokens_per_minute", "spend": "monthly_spend"}


def _counters(scope: str, kind: str):
    """A budget counts in the limiter's windows (providers_app/limits)."""
    return LimitCounter.objects.filter(scope__startswith=f"{scope}:", kind=KINDS[kind])


def _used(scope: str, kind: str) -> int:
    return sum(_counters(scope, kind).values_list("used", flat=True))


def test_a_key_over_its_tokens_per_minute_gets_a_429_naming_the_limit(
    client, providers, auth, clock
):
    reserve = reservation_tokens(build_request(HELLO, max_tokens=MAX_TOKENS))
    ClientKey.objects.filter(name="test-bot").update(tokens_per_minute=3 * reserve)

    answered = [_post(client, auth) for _ in range(3)]
    assert [r.status_code for r in answered] == [200, 200, 200]
    billed = sum(r.json()["usage"]["total_tokens"] for r in answered)
    # Settled: the window holds what the vendor billed, not the reservations.
    assert _used("key", "tokens") == billed < 3 * reserve

    # What is left is less than one more reservation... once the window is this full.
    _counters("key", "tokens").update(used=3 * reserve - reserve + 1)
    refused = _post(client, auth)
    assert refused.status_code == 429
    assert refused["Retry-After"] == "30"  # the minute ends at 12:01:00
    error = refused.json()["error"]
    assert error["code"] == "tokens_per_minute_limit_exceeded"
    assert error["type"] == "rate_limit_exceeded"
    assert "Client key 'test-bot'" in error["message"]
    assert f"{3 * reserve} tokens per minute" in error["message"]
    assert (error["limit"], error["maximum"]) == ("tokens_per_minute", 3 * reserve)
    assert (error["scope"], error["name"]) == ("key", "test-bot")

    clock.advance(30)  # the next minute: a fresh window
    assert _post(client, auth).status_code == 200


def test_a_request_alone_larger_than_the_budget_is_refused_saying_so(
    client, providers, auth, clock
):
    ClientKey.objects.filter(name="test-bot").update(tokens_per_minute=10)
    refused = _post(client, auth, max_tokens=500)
    assert refused.status_code == 429
    assert "this request alone may need" in refused.json()["error"]["message"]


def test_a_route_over_its_monthly_spend_is_refused_until_the_month_ends(
    client, providers, auth, clock
):
    for provider in providers:
        provider.price_input_per_mtok = Decimal("1000")
        provider.price_output_per_mtok = Decimal("1000")
        provider.save()
    route = route_create(name="team", providers=list(providers))
    Route.objects.filter(pk=route.pk).update(monthly_spend_limit_usd=Decimal("0.50"))

    first = _post(client, auth, model="team")
    assert first.status_code == 200
    spent = first.json()["usage"]["total_tokens"] * 1000 * 1000  # nano-dollars
    assert _used("route", "spend") == spent

    _counters("route", "spend").update(used=490_000_000)  # $0.49 used
    refused = _post(client, auth, model="team")
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert (error["code"], error["type"]) == ("monthly_spend_limit_exceeded", "insufficient_quota")
    assert (error["limit"], error["maximum"], error["scope"]) == ("monthly_spend", "0.50", "route")
    assert f"Route {route.name!r}" in error["message"]
    assert "$0.50 per month" in error["message"]
    # 2026-04-01 00:00 UTC is 21 days, 11 h 59 min 30 s away.
    assert refused["Retry-After"] == str(21 * 86400 + 11 * 3600 + 59 * 60 + 30)


def test_a_stream_settles_its_reservation_when_it_ends(client, providers, auth, clock):
    ClientKey.objects.filter(name="test-bot").update(tokens_per_minute=10_000)
    response = _post(client, auth, stream=True, stream_options={"include_usage": True})
    events = [
        json.loads(line[6:])
        for line in b"".join(response.streaming_content).decode().splitlines()
        if line.startswith("data: {")
    ]
    assert _used("key", "tokens") == events[-1]["usage"]["total_tokens"]


def test_without_a_budget_a_request_makes_no_budget_query(client, providers, auth, clock):
    _post(client, auth)  # warm: the limits are read once per process (FALLBACK_BUDGET_CACHE_S)
    with CaptureQueriesContext(connection) as queries:
        assert _post(client, auth).status_code == 200
    touched = [q["sql"] for q in queries.captured_queries if "budget" in q["sql"].lower()]
    assert touched == []
    assert not any("tokens_per_minute" in q["sql"] for q in queries.captured_queries)


def test_a_budget_the_database_cannot_count_lets_the_request_through(
    client, providers, auth, clock
):
    from unittest import mock

    from django.db import DatabaseError

    from providers_app.limits.database_backend import DatabaseCounting

    ClientKey.objects.filter(name="test-bot").update(tokens_per_minute=1)  # would refuse all
    with mock.patch.object(DatabaseCounting, "acquire", side_effect=DatabaseError("down")):
        assert _post(client, auth, max_tokens=1).status_code == 200
    assert _post(client, auth, max_tokens=1).status_code == 429  # counted again, once back


@pytest.fixture
def redis_limits(settings):
    import redis

    url = os.environ.get("FALLBACK_TEST_REDIS_URL", "redis://127.0.0.1:6379/9")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=0.5).flushdb()
    except redis.RedisError:
        pytest.skip(f"no Redis at {url}")
    settings.FALLBACK_LIMITS_REDIS_URL = url
    yield redis.Redis.from_url(url)
    redis.Redis.from_url(url).flushdb()


def test_with_limits_in_redis_budgets_count_there(client, providers, auth, clock, redis_limits):
    reserve = reservation_tokens(build_request(HELLO, max_tokens=MAX_TOKENS))
    ClientKey.objects.filter(name="test-bot").update(tokens_per_minute=2 * reserve)
    key = ClientKey.objects.get(name="test-bot")
    window = f"fallback:limit:key:{key.pk}:tokens_per_minute:{int(NOON_30.timestamp()) // 60 * 60}"

    answered = [_post(client, auth) for _ in range(2)]
    assert [r.status_code for r in answered] == [200, 200]
    billed = sum(r.json()["usage"]["total_tokens"] for r in answered)
    assert int(redis_limits.get(window)) == billed  # settled there, as in the database
    assert not _counters("key", "tokens").exists()

    redis_limits.set(window, 2 * reserve - reserve + 1)
    refused = _post(client, auth)
    assert refused.status_code == 429
    assert refused["Retry-After"] == "30"
    assert refused.json()["error"]["code"] == "tokens_per_minute_limit_exceeded"
