"""Issue 12's provider faults, each driven through the simulator and the HTTP API.

Default FALLBACK_ settings throughout (this module undoes the API suite's
zeroed backoff); the providers have the model's defaults (two attempts each)
except where a row needs a shorter attempt timeout to keep the test quick,
which is the provider's own configuration, not a setting. Rows that need
minutes of outage run on a FakeClock. The stream-rescue rows (continuation
after a cut or stall, a rejected prefill) are in test_stream_rescue.py.
"""

import itertools
import json
import time
from datetime import timedelta

import pytest

from providers_app.conf import DEFAULTS
from providers_app.models import BreakerState, FailoverEvent
from tests.factories import provider_create

URL = "/v1/chat/completions"
HELLO = [{"role": "user", "content": "Say hello."}]


@pytest.fixture(autouse=True)
def _production_backoff(settings):
    settings.FALLBACK_BACKOFF_BASE_S = DEFAULTS["BACKOFF_BASE_S"]
    settings.FALLBACK_BACKOFF_MAX_S = DEFAULTS["BACKOFF_MAX_S"]


@pytest.fixture
def chain(db, primary, secondary):
    """Primary then secondary on the simulators, with the model's defaults."""

    def make(**primary_fields):
        first = provider_create(
            name="primary", base_url=primary.base_url,
            **{"timeout_s": 30.0, **primary_fields},
        )  # fmt: skip
        second = provider_create(name="secondary", base_url=secondary.base_url, timeout_s=30.0)
        return first, second

    return make


def _post(client, auth, *, stream=False):
    body = {"model": "fallback", "messages": HELLO, "stream": stream}
    return client.post(URL, json.dumps(body), content_type="application/json", headers=auth)


def _stream_text(response) -> str:
    text = []
    for line in b"".join(response.streaming_content).decode().splitlines():
        if line.startswith("data: {"):
            for choice in json.loads(line[6:]).get("choices", []):
                text.append(choice.get("delta", {}).get("content") or "")
    return "".join(text)


def test_a_silent_provider_hands_over_after_one_timeout(client, auth, chain, primary, secondary):
    """Row 1: accepts the request and never answers: the secondary's answer right
    after the first timeout, without retrying the silent provider."""
    chain(timeout_s=2.0)
    primary.set_fault("hang")
    started = time.monotonic()

    response = _post(client, auth)

    elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert response["X-Fallback-Provider"] == "secondary"
    assert (primary.request_count, secondary.request_count) == (1, 1)
    assert 2.0 <= elapsed < 3.5


def test_a_first_token_after_20_s_hands_over_at_the_first_token_limit(
    client, auth, chain, primary, secondary
):
    """Row 2: the default first-token limit (10 s) is well under 20 s; the next
    provider answers at once, under 15 s in all."""
    chain()
    primary.set_fault("slow_first_token", delay_s=20, interval_s=0.5)
    started = time.monotonic()

    response = _post(client, auth, stream=True)
    text = _stream_text(response)

    elapsed = time.monotonic() - started
    assert text == "Hello from secondary."
    assert (primary.request_count, secondary.request_count) == (1, 1)
    assert DEFAULTS["STREAM_FIRST_TOKEN_S"] <= elapsed < 15


CONTEXT_LENGTH = {
    "status": 400,
    "message": "This model's maximum context length is 8192 tokens.",
    "type": "invalid_request_error",
    "code": "context_length_exceeded",
}


def test_a_context_length_failure_tries_a_provider_whose_window_is_unknown(
    client, auth, chain, primary, secondary
):
    """Row 6: no `context_window` anywhere: an unknown window may be larger."""
    chain()
    primary.set_fault("error", **CONTEXT_LENGTH)

    response = _post(client, auth)

    assert response.status_code == 200
    assert response["X-Fallback-Provider"] == "secondary"
    assert (primary.request_count, secondary.request_count) == (1, 1)  # never retried


def test_a_prompt_too_long_everywhere_names_the_windows_tried(
    client, auth, chain, primary, secondary
):
    chain(context_window=8192)
    secondary.set_fault("error", **CONTEXT_LENGTH)
    primary.set_fault("error", **CONTEXT_LENGTH)
    provider_create(
        name="smaller", base_url=secondary.base_url, context_window=4096
    )  # never asked: its window is known to be too small

    response = _post(client, auth)

    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "primary (8192 tokens)" in message
    assert "secondary (window unknown)" in message
    assert (primary.request_count, secondary.request_count) == (1, 1)


def test_traffic_returns_within_30_s_of_a_recovery(client, auth, chain, primary, fake_clock):
    """Row 7: 503 for 60 s, then healthy, a request every 4 s, no health worker:
    the primary answers again within 30 s of its recovery, and each open cycle
    wrote one breaker-opened event."""
    first, _ = chain()
    primary.set_fault("error", status=503)
    answered_by = {}
    for second in range(0, 120, 4):
        if second == 60:
            primary.set_fault("ok")
        response = _post(client, auth)
        assert response.status_code == 200
        answered_by[second] = response["X-Fallback-Provider"]
        fake_clock.advance(4)

    back = min(s for s, provider in answered_by.items() if s >= 60 and provider == "primary")
    assert back - 60 <= 30
    assert all(answered_by[s] == "primary" for s in answered_by if s >= back)
    kinds = list(
        FailoverEvent.objects.filter(provider=first, kind__startswith="breaker_")
        .order_by("id")
        .values_list("kind", flat=True)
    )
    # opened, (half-open, opened)*, half-open, closed: never two opens in one cycle.
    assert kinds[0] == "breaker_opened"
    assert kinds[-2:] == ["breaker_half_open", "breaker_closed"]
    assert all(a != b for a, b in itertools.pairwise(kinds))


def test_a_short_rate_limit_hint_is_waited_out_on_the_preferred_provider(
    client, auth, chain, primary, secondary, fake_clock
):
    """Row 8: 429 with Retry-After: 2, then fine: honoured under the default
    inline cap (5 s) while the deadline allows."""
    chain()
    primary.set_fault(
        "sequence", steps=[{"mode": "rate_limit", "options": {"retry_after": "2"}}, {"mode": "ok"}]
    )

    response = _post(client, auth)

    assert response.status_code == 200
    assert response["X-Fallback-Provider"] == "primary"
    assert response["X-Fallback-Attempts"] == "2"
    assert secondary.request_count == 0
    assert 2.0 <= fake_clock.slept[0] <= 2.4  # the hint, never shortened


def test_all_failed_retry_after_is_when_a_breaker_lets_a_provider_be_tried(
    client, auth, chain, primary, secondary, fake_clock
):
    """Issue 15: every provider failed and the last failures opened their
    breakers; Retry-After is the soonest open_until, not 1 s."""
    first, second = chain()
    primary.set_fault("error", status=500)
    secondary.set_fault("error", status=500)
    responses_ = [_post(client, auth) for _ in range(3)]  # 6 failures each: both open

    states = BreakerState.objects.filter(pk__in=[first.pk, second.pk])
    assert {s.state for s in states} == {"open"}
    soonest = min(s.open_until for s in states) - fake_clock.now()
    last = responses_[-1]
    assert last.status_code == 503
    assert int(last["Retry-After"]) == pytest.approx(soonest.total_seconds(), abs=1)
    assert int(last["Retry-After"]) >= DEFAULTS["BREAKER_OPEN_BASE_S"] * 0.8
    assert soonest <= timedelta(seconds=DEFAULTS["BREAKER_OPEN_BASE_S"] * 1.2)


def test_openrouter_routing_requirements_503_fails_over_at_once_and_cools_down(
    client, auth, chain, primary, secondary
):
    """OpenRouter's "No available model provider meets your routing requirements" is a
    routing-configuration answer: no retry on the same provider (two attempts allowed),
    the secondary answers, and the primary's breaker opens (the configuration cool-down)."""
    first, _ = chain()
    primary.set_fault(
        "error", status=503, message="No available model provider meets your routing requirements"
    )

    response = _post(client, auth)
    again = _post(client, auth)

    assert response.status_code == again.status_code == 200
    assert response["X-Fallback-Provider"] == "secondary"
    assert (primary.request_count, secondary.request_count) == (1, 2)  # then skipped
    assert BreakerState.objects.get(provider=first).state == BreakerState.State.OPEN
    event = FailoverEvent.objects.get(kind=FailoverEvent.Kind.FAILOVER)
    assert (event.reason, event.status_code) == ("not_found", 503)
