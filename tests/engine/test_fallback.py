"""The fallback service end to end: real HTTP against local fault-injecting upstreams."""

import time
from datetime import timedelta

import pytest
from django.db import OperationalError, connection

from providers_app.engine import fallback
from providers_app.engine.clock import get_clock
from providers_app.models import BreakerState, FailoverEvent, ProbeLease
from providers_app.testing import breaker_state_set
from tests.factories import provider_create

from .conftest import HELLO

State = BreakerState.State


def _state(provider) -> BreakerState:
    return BreakerState.objects.get(pk=provider.pk)


# --- failover and events -----------------------------------------------------


def test_server_error_fails_over_and_records_one_event(providers, primary, secondary):
    first, second = providers(max_attempts=2)
    primary.set_fault("error", status=500)

    result = fallback.complete(HELLO, request_id="req-abc")

    assert result.provider == "secondary"
    assert "secondary" in result.text
    assert result.attempts == 3  # two on the primary, one on the secondary
    assert result.failovers == 1
    assert primary.request_count == 2
    event = FailoverEvent.objects.get(kind="failover")
    assert (event.provider, event.to_provider) == (first, second)
    assert (event.reason, event.status_code, event.request_id) == ("server_error", 500, "req-abc")
    assert event.attempt == 2
    assert "Say hello" not in event.detail  # never the prompt


@pytest.mark.parametrize(
    ("mode", "options", "category"),
    [
        ("reset", {}, "transport"),
        ("reset_mid_body", {}, "transport"),
        ("garbage", {}, "malformed_response"),
        ("html_502", {}, "server_error"),
        ("error", {"status": 503}, "overloaded"),
        ("error", {"status": 401}, "auth"),
        ("quota", {}, "quota_exhausted"),
    ],
)
def test_each_failure_category_fails_over(providers, primary, mode, options, category):
    providers()
    primary.set_fault(mode, **options)
    result = fallback.complete(HELLO)
    assert result.provider == "secondary"
    assert result.failures[0].reason == category
    assert FailoverEvent.objects.get(kind="failover").reason == category


def test_auth_failure_opens_the_breaker_at_once_for_long(providers, primary, fake_clock):
    first, _ = providers()
    primary.set_fault("error", status=401)
    fallback.complete(HELLO)
    state = _state(first)
    assert state.state == State.OPEN
    assert state.open_until - fake_clock.now() >= timedelta(seconds=240)  # 300 s +- 20 %


def test_unset_api_key_fails_over_without_calling(db, primary, secondary, monkeypatch):
    monkeypatch.delenv("FB_MISSING_KEY", raising=False)
    provider_create(
        name="keyless", kind="openai", base_url=primary.base_url, api_key_env="FB_MISSING_KEY",
    )  # fmt: skip
    provider_create(name="secondary", base_url=secondary.base_url)
    result = fallback.complete(HELLO)
    assert result.provider == "secondary"
    assert result.failures[0].reason == "auth"
    assert primary.request_count == 0


def test_invalid_request_fails_fast_without_retry_or_breaker(providers, primary, secondary):
    first, _ = providers(max_attempts=3)
    primary.set_fault("error", status=400)
    for _ in range(100):
        with pytest.raises(fallback.RequestFailed) as excinfo:
            fallback.complete(HELLO)
        assert excinfo.value.category == "invalid_request"
    assert primary.request_count == 100  # zero retries
    assert secondary.request_count == 0  # wrong everywhere: no failover
    assert _state(first).state == State.CLOSED
    assert _state(first).consecutive_failures == 0


def test_retry_on_the_same_provider_recovers(providers, primary):
    providers(max_attempts=3)
    primary.set_fault(
        "sequence", steps=[{"mode": "error", "options": {"status": 503}}, {"mode": "ok"}]
    )
    result = fallback.complete(HELLO)
    assert (result.provider, result.attempts, result.failovers) == ("primary", 2, 0)
    assert not FailoverEvent.objects.exists()


def test_all_failed_names_every_provider_and_coalesces_events(providers, primary, secondary):
    providers()
    primary.set_fault("error", status=500)
    secondary.set_fault("error", status=503)
    with pytest.raises(fallback.AllProvidersFailed) as excinfo:
        fallback.complete(HELLO)
    reasons = {r.provider: r.reason for r in excinfo.value.reasons}
    assert reasons == {"primary": "server_error", "secondary": "overloaded"}
    assert excinfo.value.retry_after_s >= 1
    for _ in range(5):
        with pytest.raises(fallback.AllProvidersFailed):
            fallback.complete(HELLO)
    assert FailoverEvent.objects.filter(kind="all_failed").count() == 1


def test_all_open_fails_in_milliseconds_with_retry_after_and_no_writes(
    providers, primary, secondary, fake_clock, django_assert_max_num_queries
):
    first, second = providers()
    until = fake_clock.now() + timedelta(seconds=42)
    breaker_state_set(first, second, state=State.OPEN, open_until=until)
    with pytest.raises(fallback.AllProvidersFailed) as excinfo:  # first one may write the event
        fallback.complete(HELLO)
    assert excinfo.value.retry_after_s == 42
    with django_assert_max_num_queries(1), pytest.raises(fallback.AllProvidersFailed):
        fallback.complete(HELLO)  # the routing read only: no per-request write
    assert primary.request_count == secondary.request_count == 0


# --- rate limits ------------------------------------------------------------------


def test_retry_after_cools_the_provider_down_for_every_request(
    providers, primary, secondary, settings
):
    settings.FALLBACK_MAX_INLINE_RETRY_AFTER_S = 1.0
    first, _ = providers(max_attempts=2)
    primary.set_fault("rate_limit", retry_after="2")
    t0 = time.time()

    assert fallback.complete(HELLO).provider == "secondary"  # 2 s > inline cap: fail over now
    primary.set_fault("ok")
    while time.time() - t0 < 1.9:
        assert fallback.complete(HELLO).provider == "secondary"
        time.sleep(0.05)
    assert primary.request_count == 1  # nobody called it during the cooldown
    assert _state(first).state == State.CLOSED  # a rate limit is not a breaker failure

    while fallback.complete(HELLO).provider != "primary":
        time.sleep(0.02)
    assert primary.request_times[-1] - t0 <= 2.5


def test_huge_retry_after_is_clamped_and_fails_over_at_once(providers, primary, fake_clock):
    first, _ = providers(max_attempts=3)
    primary.set_fault("rate_limit", retry_after="86400")
    started = time.monotonic()
    assert fallback.complete(HELLO).provider == "secondary"
    assert time.monotonic() - started < 1.0
    assert fake_clock.slept == []  # nobody slept
    assert primary.request_count == 1  # no retry on the same provider
    # A day-long hint is a quota wall (docs/vendors.md), not a blip: the
    # breaker opens for its long duration instead of a 120 s cooldown.
    assert _state(first).state == State.OPEN
    assert FailoverEvent.objects.get(kind="failover").reason == "quota_exhausted"


def test_garbage_retry_after_falls_back_to_backoff(providers, primary, fake_clock):
    providers(max_attempts=2)
    primary.set_fault("rate_limit", retry_after="abc")
    assert fallback.complete(HELLO).provider == "secondary"
    assert primary.request_count == 2  # retried on the same provider after a backoff
    assert len(fake_clock.slept) == 1
    assert 0 <= fake_clock.slept[0] <= 0.25


def test_short_retry_after_is_waited_out_inline(providers, primary, fake_clock, settings):
    settings.FALLBACK_MAX_INLINE_RETRY_AFTER_S = 1.0
    providers(max_attempts=2)
    primary.set_fault(
        "sequence",
        steps=[{"mode": "rate_limit", "options": {"retry_after": "0.5"}}, {"mode": "ok"}],
    )
    result = fallback.complete(HELLO)
    assert (result.provider, result.attempts) == ("primary", 2)
    assert 0.5 <= fake_clock.slept[0] <= 0.6  # U(hint, 1.2 * hint): never shorter


# --- storms, deadlines ------------------------------------------------------------


def test_primary_hard_down_for_a_thousand_requests(providers, primary, secondary):
    providers(max_attempts=2)
    primary.set_fault("error", status=503)
    answered_by = {fallback.complete(HELLO).provider for _ in range(1000)}
    assert answered_by == {"secondary"}
    total_upstream = primary.request_count + secondary.request_count
    assert total_upstream <= 1.1 * 1000 + 10
    assert primary.request_count <= 6  # 5 to trip, counted per attempt


def test_hung_primary_finishes_within_the_deadline(providers, primary, secondary, settings):
    settings.FALLBACK_MIN_ATTEMPT_S = 0.3
    providers(max_attempts=3, timeout_s=1.0)
    primary.set_fault("hang")
    secondary.set_fault("hang")
    deadline = 1.5
    started = time.monotonic()
    start_wall = time.time()

    with pytest.raises(fallback.AllProvidersFailed):
        fallback.complete(HELLO, deadline_s=deadline)

    assert time.monotonic() - started <= deadline + 0.5
    arrivals = primary.request_times + secondary.request_times
    assert arrivals, "at least one attempt was made"
    # No attempt started with less than FALLBACK_MIN_ATTEMPT_S left.
    assert all(t - start_wall <= deadline - 0.3 + 0.05 for t in arrivals)


def test_no_sleep_crosses_the_deadline(providers, primary, fake_clock, settings):
    settings.FALLBACK_MIN_ATTEMPT_S = 0.5
    settings.FALLBACK_MAX_INLINE_RETRY_AFTER_S = 30.0
    providers(max_attempts=3)
    primary.set_fault("rate_limit", retry_after="5")
    assert fallback.complete(HELLO, deadline_s=3.0).provider == "secondary"
    assert fake_clock.slept == []  # a 5 s wait would have crossed the 3 s deadline


# --- streaming ----------------------------------------------------------------------


def _collect(stream: fallback.ChatStream) -> str:
    return "".join(chunk.text for chunk in stream)


@pytest.mark.parametrize(
    ("mode", "options"),
    [
        ("error", {"status": 500}),
        ("reset", {}),
        ("midstream_error", {"chunks_before": 0}),
        ("truncate_stream", {"chunks": 0}),
        ("slow_first_token", {"delay_s": 2.0, "interval_s": 0.1}),
    ],
)
def test_stream_fails_over_invisibly_before_the_first_token(
    providers, primary, settings, mode, options
):
    settings.FALLBACK_STREAM_FIRST_TOKEN_S = 0.5
    providers()
    primary.set_fault(mode, **options)
    started = time.monotonic()
    stream = fallback.stream(HELLO)
    assert stream.provider == "secondary"
    assert stream.failovers == 1
    assert _collect(stream) == "Hello from secondary."
    assert time.monotonic() - started < 1.5
    assert FailoverEvent.objects.filter(kind="failover").count() == 1


def test_stream_failure_after_output_ends_partial_without_failover(providers, primary, secondary):
    first, _ = providers()
    primary.set_fault("midstream_error", chunks_before=2)
    stream = fallback.stream(HELLO)
    received = []

    def consume():
        for chunk in stream:
            received.append(chunk.text)

    with pytest.raises(fallback.StreamInterrupted) as excinfo:
        consume()
    assert excinfo.value.partial
    assert excinfo.value.provider == "primary"
    assert "".join(received)  # output arrived before the failure
    assert secondary.request_count == 0  # never switched providers
    assert _state(first).consecutive_failures == 1


def test_client_leaving_a_probe_stream_returns_its_permit(providers, primary, fake_clock):
    first, _ = providers()
    breaker_state_set(
        first, state=State.OPEN, open_until=fake_clock.now() - timedelta(seconds=1), open_cycles=1
    )
    primary.set_fault("ok", text="one two three four five six", chunk_delay_s=0.05)
    stream = fallback.stream(HELLO)
    assert stream.provider == "primary"
    iterator = iter(stream)
    next(iterator)
    assert _state(first).probes_issued == 1
    iterator.close()  # the client went away mid-answer

    state = _state(first)
    assert state.state == State.HALF_OPEN
    assert ProbeLease.objects.get(provider=first).outcome == "released"  # the slot is free
    primary.set_fault("ok")
    assert fallback.complete(HELLO).provider == "primary"  # the next request gets the probe
    assert _state(first).state == State.CLOSED


# --- cost and resilience of the store ------------------------------------------------


def test_happy_path_makes_one_query_and_no_write(providers, django_assert_num_queries):
    providers()
    fallback.complete(HELLO)  # warm the adapter pool
    with django_assert_num_queries(1) as captured:
        assert fallback.complete(HELLO).provider == "primary"
    assert captured.captured_queries[0]["sql"].lstrip().upper().startswith("SELECT")


def test_requests_succeed_while_the_breaker_tables_are_unreachable(providers, primary):
    providers()
    assert fallback.complete(HELLO).provider == "primary"  # this process saw a snapshot

    def unreachable(execute, sql, params, many, context):
        if any(t in sql for t in ("breakerstate", "callbucket", "failoverevent", "probelease")):
            raise OperationalError("could not connect to server: Connection refused")
        return execute(sql, params, many, context)

    primary.set_fault("sequence", steps=[{"mode": "error", "options": {"status": 500}}] * 3
                      + [{"mode": "ok"}])  # fmt: skip
    with connection.execute_wrapper(unreachable):
        answers = [fallback.complete(HELLO) for _ in range(6)]
    assert [a.provider for a in answers][:3] == ["secondary"] * 3
    assert [a.provider for a in answers][3:] == ["primary"] * 3
    assert get_clock() is not None


def test_retry_budget_refusal_fails_over_instead_of_retrying(providers, primary, settings):
    settings.FALLBACK_RETRY_BUDGET_MIN = 2
    settings.FALLBACK_RETRY_BUDGET_RATIO = 0.0
    providers(max_attempts=2, failure_threshold=100, minimum_calls=1000)
    primary.set_fault("error", status=500)

    answers = [fallback.complete(HELLO) for _ in range(5)]

    assert {a.provider for a in answers} == {"secondary"}
    assert [a.attempts for a in answers] == [3, 3, 2, 2, 2]  # two retries, then refused
    assert primary.request_count == 2 * 2 + 3
    details = list(FailoverEvent.objects.order_by("id").values_list("detail", flat=True))
    assert ["retry budget" in d for d in details] == [False, False, True, True, True]


# --- one decision: long hints ---------------------------------------------------------


def _http_date(seconds_ahead: float) -> str:
    from email.utils import formatdate

    return formatdate(time.time() + seconds_ahead, usegmt=True)


@pytest.mark.parametrize(
    "retry_after", [pytest.param("30", id="seconds"), pytest.param("http-date", id="http-date")]
)
def test_a_5xx_with_a_long_retry_after_fails_over_at_once_and_cools_down(
    providers, primary, secondary, fake_clock, retry_after
):
    """Default settings: one attempt on the hinting provider, no sleep, cooldown for the hint."""
    first, _ = providers(max_attempts=2)
    hint = _http_date(30) if retry_after == "http-date" else retry_after
    primary.set_fault("error", status=503, retry_after=hint)

    result = fallback.complete(HELLO)

    assert result.provider == "secondary"
    assert primary.request_count == 1  # no retry on the provider that asked for 30 s
    assert fake_clock.slept == []  # nothing waited: the request took no simulated time
    cooldown = (_state(first).cooldown_until - fake_clock.now()).total_seconds()
    assert cooldown == pytest.approx(30, abs=1.5)  # the HTTP-date has 1 s resolution
    event = FailoverEvent.objects.get(kind="failover")
    assert "inline cap" in event.detail
    # Every request meanwhile skips it without a call.
    assert fallback.complete(HELLO).provider == "secondary"
    assert primary.request_count == 1


# --- streams limited by silence, not length -------------------------------------------


def test_a_healthy_stream_longer_than_the_attempt_timeout_completes(providers, primary):
    """Issue 11's 16 s stream under a 10 s timeout, scaled down: 1.6 s under 1 s."""
    first, _ = providers(timeout_s=1.0)
    words = " ".join(f"w{i}" for i in range(16))
    primary.set_fault("ok", text=words, chunk_delay_s=0.1)
    started = time.monotonic()

    stream = fallback.stream(HELLO)
    text = _collect(stream)

    assert time.monotonic() - started > 1.0  # longer than the attempt timeout
    assert text.split() == words.split()
    assert stream.provider == "primary"
    state = _state(first)
    assert (state.state, state.consecutive_failures) == (State.CLOSED, 0)
    assert not FailoverEvent.objects.exists()


def test_a_stream_reaching_the_maximum_duration_ends_without_a_breaker_failure(
    providers, primary, settings
):
    settings.FALLBACK_STREAM_MAX_S = 0.5
    first, _ = providers(timeout_s=0.2)
    primary.set_fault("ok", text=" ".join(["word"] * 30), chunk_delay_s=0.05)

    stream = fallback.stream(HELLO)
    received = []

    def consume():
        for chunk in stream:
            received.append(chunk.text)

    with pytest.raises(fallback.StreamInterrupted) as excinfo:
        consume()

    assert excinfo.value.category == "stream_max_duration"
    assert 3 <= len(received) < 30  # it ran past the 0.2 s timeout, then stopped at 0.5 s
    state = _state(first)
    assert (state.state, state.consecutive_failures) == (State.CLOSED, 0)


# --- every fault classified -----------------------------------------------------------

DEEP_JSON = "[" * 5000 + "]" * 5000


@pytest.mark.parametrize("streaming", [False, True], ids=["complete", "stream"])
def test_a_5000_deep_json_body_fails_over_and_counts_one_breaker_failure(
    providers, primary, streaming
):
    first, _ = providers()
    primary.set_fault("garbage", body=DEEP_JSON)

    if streaming:
        stream = fallback.stream(HELLO)
        provider, failures = stream.provider, stream.failures
        assert _collect(stream) == "Hello from secondary."
    else:
        result = fallback.complete(HELLO)
        provider, failures = result.provider, result.failures

    assert provider == "secondary"
    assert failures[0].reason == "malformed_response"
    assert _state(first).consecutive_failures == 1
    assert FailoverEvent.objects.get(kind="failover").reason == "malformed_response"


def test_a_5000_deep_stream_event_after_output_ends_the_stream_classified(db, fake_clock):
    import responses

    first = provider_create(name="deep", base_url="https://deep.invalid/v1")
    chunk = '{"choices":[{"index":0,"delta":{"content":"Hel"}}]}'
    body = f"data: {chunk}\n\ndata: {DEEP_JSON}\n\n"
    with responses.RequestsMock() as mock:
        mock.add(responses.POST, "https://deep.invalid/v1/chat/completions", body=body,
                 content_type="text/event-stream")  # fmt: skip
        stream = fallback.stream(HELLO)
        with pytest.raises(fallback.StreamInterrupted) as excinfo:
            _collect(stream)
    assert excinfo.value.category == "malformed_response"
    assert _state(first).consecutive_failures == 1


def test_a_hung_first_provider_leaves_a_share_of_the_deadline_to_the_next(
    providers, primary, secondary, settings
):
    settings.FALLBACK_MIN_ATTEMPT_S = 0.5  # a short deadline keeps the test short
    providers(timeout_s=4.0)  # as long as the whole request deadline below
    primary.set_fault("hang")
    started = time.monotonic()

    result = fallback.complete(HELLO, deadline_s=4.0)

    assert result.provider == "secondary"
    assert primary.request_count == 1
    assert 2.9 <= time.monotonic() - started < 3.8  # cut at 75 % of the deadline
