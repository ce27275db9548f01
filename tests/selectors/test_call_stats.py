"""One definition of call statistics: /api/status, the dashboard and /metrics
report the same success rate for the same calls, computed by `CallStats`."""

from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
from django.urls import reverse
from prometheus_client.parser import text_string_to_metric_families

from providers_app.engine import counters
from providers_app.models import CallBucket
from providers_app.selectors.call_stats import CallStats
from providers_app.services.housekeeping import call_counters_roll_up

NOW = datetime(2026, 1, 10, 12, 30, tzinfo=UTC)


@pytest.fixture
def calls(make_provider, fake_clock):
    """alpha: 9 answered (2 slow) of 12 attempts (one 429); beta: 2 of 3; gamma: none.
    Recent enough for /api/status, rolled up into the hour the dashboard draws."""
    fake_clock.set(NOW)
    counters.discard_pending()
    alpha = make_provider(name="alpha")
    beta = make_provider(name="beta")
    make_provider(name="gamma")
    bucket = NOW - timedelta(seconds=30)
    CallBucket.objects.create(
        provider=alpha, bucket_start=bucket, successes=5, slow_calls=2, failures=1,
        rate_limited=1, retries=1, latency_ms_sum=4200.0,
    )  # fmt: skip
    CallBucket.objects.create(
        provider=alpha, bucket_start=bucket - timedelta(seconds=1), shard=1, successes=2,
        failures=1, latency_ms_sum=300.0,
    )  # fmt: skip
    CallBucket.objects.create(
        provider=beta, bucket_start=bucket, successes=2, failures=1, latency_ms_sum=800.0
    )
    call_counters_roll_up(now=NOW)


@pytest.fixture
def staff_client(client, django_user_model):
    client.force_login(
        django_user_model.objects.create_user(
            "ops", password="pw", is_staff=True, is_superuser=True
        )
    )
    return client


def _rates(client) -> dict[str, dict[str, float | None]]:
    """{surface: {provider: success rate as a fraction}} read off each surface."""
    status = client.get("/api/status").json()["providers"]
    api = {p["name"]: p["recent"]["success_rate"] for p in status}

    page = client.get(
        reverse("admin:providers_app_dashboard_changelist"), {"range": "24h"}
    ).context["dashboard"]
    dashboard = {row.name: row.total.success_rate for row in page.traffic}
    shown = {row.name: row.success_rate_percent for row in page.traffic}

    text = client.get("/metrics").content.decode()
    metrics: dict[str, float | None] = dict.fromkeys(api)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "fallback_provider_success_ratio":
                metrics[sample.labels["provider"]] = sample.value
    return {"api": api, "dashboard": dashboard, "metrics": metrics, "shown_percent": shown}


def test_status_dashboard_and_metrics_report_one_success_rate(staff_client, calls):
    rates = _rates(staff_client)

    expected = {"alpha": 0.75, "beta": 0.6667, "gamma": None}
    assert rates["api"] == expected
    assert rates["dashboard"] == expected
    assert rates["metrics"] == expected
    assert rates["shown_percent"] == {"alpha": 75.0, "beta": 66.67, "gamma": None}


def test_every_surface_reads_the_one_definition(staff_client, calls):
    """Change the definition and every surface follows: none has its own arithmetic."""
    changed = property(lambda stats: 0.125 if stats.attempts else None)
    with mock.patch.object(CallStats, "success_rate", changed):
        rates = _rates(staff_client)

    for surface in ("api", "dashboard", "metrics"):
        assert rates[surface] == {"alpha": 0.125, "beta": 0.125, "gamma": None}, surface


def test_call_stats_arithmetic():
    stats = CallStats(successes=5, slow_calls=2, failures=2, rate_limited=1, latency_ms_sum=700)

    assert stats.answered == 7
    assert stats.attempts == 10  # rate-limited calls reached the provider
    assert stats.success_rate == 0.7
    assert stats.mean_latency_ms == 100.0
    assert CallStats().success_rate is None  # nothing attempted: unknown, not 0
    assert (stats + stats).attempts == 20


def test_call_stats_of_a_row_or_of_sums():
    row = CallBucket(successes=1, slow_calls=1, failures=1, rate_limited=0)

    assert CallStats.of(row) == CallStats.of({"successes": 1, "slow_calls": 1, "failures": 1})
    assert CallStats.of({"successes": None}).attempts == 0  # an empty Sum() is None


# --- latency: one definition per chart, the same on /metrics ----------------


def _metric_bucket(text: str, name: str, labels: dict[str, str]) -> dict[str, float]:
    """{le: cumulative count} of one histogram series in /metrics text."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == f"{name}_bucket" and all(
                sample.labels.get(k) == v for k, v in labels.items()
            ):
                found[sample.labels["le"]] = sample.value
    return found


def _bucket_of_one_call(before: dict[str, float], after: dict[str, float]) -> str:
    """The upper bound (ms, as the dashboard's histograms key it) of the one new call."""
    for le in sorted(after, key=lambda le: float(le)):
        if after[le] - before.get(le, 0.0) == 1:
            return "inf" if le == "+Inf" else f"{float(le) * 1000:g}"
    raise AssertionError("no call was observed")


def test_a_streamed_call_falls_in_the_same_buckets_on_the_dashboard_and_on_metrics(
    staff_client, make_provider, primary, fake_clock, monkeypatch
):
    """0.3 s to the first token, 5.9 s to the last chunk: both surfaces put the
    first in 250-500 ms and the total in 5-10 s, under the same two names."""
    from providers_app.engine import fallback
    from providers_app.testing import process_state_reset

    process_state_reset()
    fake_clock.set(NOW)
    make_provider(name="streamer", base_url=primary.base_url, max_attempts=1)
    primary.set_fault("ok", text="one two three four five six")
    opened = fallback.open_stream

    def first_token_after_300_ms(adapter, request, timeout):
        stream = opened(adapter, request, timeout)
        fake_clock.advance(0.3)
        return stream

    monkeypatch.setattr(fallback, "open_stream", first_token_after_300_ms)
    series = {"provider": "streamer"}
    before = staff_client.get("/metrics").content.decode()

    stream = fallback.stream([{"role": "user", "content": "Count to six."}])
    for index, _chunk in enumerate(stream):
        if index == 0:
            fake_clock.advance(5.6)  # the rest of the answer takes 5.6 s more
    counters.flush_pending()

    after = staff_client.get("/metrics").content.decode()
    first_output = _bucket_of_one_call(
        _metric_bucket(before, "fallback_attempt_seconds", {**series, "outcome": "success"}),
        _metric_bucket(after, "fallback_attempt_seconds", {**series, "outcome": "success"}),
    )
    total = _bucket_of_one_call(
        _metric_bucket(before, "fallback_answer_seconds", series),
        _metric_bucket(after, "fallback_answer_seconds", series),
    )
    page = staff_client.get(reverse("admin:providers_app_dashboard_changelist"), {"range": "1h"})
    (row,) = [row for row in page.context["dashboard"].traffic if row.name == "streamer"]
    assert (first_output, total) == ("500", "10000")
    assert dict(row.total.histogram) == {first_output: 1}
    assert dict(row.total.total_histogram) == {total: 1}
    content = page.content.decode()
    assert "Time to first output per provider" in content
    assert "Total time per provider" in content
    process_state_reset()


# --- requests as the callers saw them: the dashboard agrees with /metrics ----


def _samples(client) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of every sample on /metrics."""
    text = client.get("/metrics").content.decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _delta(before, after, name: str, **labels) -> float:
    """The increase of every sample `name` whose labels include `labels`, added up."""

    def total(samples):
        return sum(
            value
            for (sample, found), value in samples.items()
            if sample == name and set(labels.items()) <= set(found)
        )

    return total(after) - total(before)


def test_the_dashboard_agrees_with_metrics_on_requests_answers_and_skips(
    staff_client, make_provider, primary, secondary, fake_clock
):
    """Real requests through the engine: answered at the first try, after a retry,
    by the secondary (the primary failing, then skipped while open), and failed.
    The live range shows the same counts as /metrics over the same minutes, and
    requests = answered + failed."""
    from django.utils import timezone

    from providers_app.engine import fallback
    from providers_app.engine.events import all_failed_events
    from providers_app.testing import process_state_reset

    process_state_reset()
    # Events are stamped by the database's clock: the engine's starts at the same moment.
    fake_clock.set(timezone.now())
    make_provider(name="agree-primary", base_url=primary.base_url, max_attempts=2)
    make_provider(name="agree-secondary", base_url=secondary.base_url, max_attempts=1)
    before = _samples(staff_client)
    ask = [{"role": "user", "content": "hello"}]

    for _ in range(3):
        fallback.complete(ask)  # first try
    primary.set_fault("sequence", steps=[{"mode": "error"}, {"mode": "ok"}])
    fallback.complete(ask)  # after a retry
    primary.set_fault("error")
    for _ in range(8):  # failing, until its breaker opens; then skipped
        fake_clock.advance(1)
        fallback.complete(ask)
    secondary.set_fault("error")
    for _ in range(2):
        fake_clock.advance(1)
        with pytest.raises(fallback.AllProvidersFailed):
            fallback.complete(ask)
    counters.flush_pending()
    all_failed_events.flush()
    after = _samples(staff_client)
    # The window ends at the engine's now: past the events too (stamped by the database clock).
    fake_clock.set(max(fake_clock.now(), timezone.now()))

    page = staff_client.get(reverse("admin:providers_app_dashboard_changelist"))
    assert page.context["range_key"] == "15m"
    dashboard = page.context["dashboard"]
    requests = dashboard.requests
    metric = lambda name, **labels: int(_delta(before, after, name, **labels))  # noqa: E731

    assert requests.answered_first_try == metric("fallback_answers_total", how="first_try") == 3
    assert requests.answered_after_retries == metric(
        "fallback_answers_total", how="after_retries"
    ) == 1  # fmt: skip
    assert requests.answered_by_fallback == metric(
        "fallback_answers_total", how="by_fallback"
    ) == 8  # fmt: skip
    assert requests.answered == metric("fallback_requests_total", outcome="success") == 12
    assert requests.failed == metric("fallback_requests_total", outcome="all_failed") == 2
    assert requests.requests == requests.answered + requests.failed == 14

    rows = {row.name: row for row in dashboard.traffic}
    skipped = sum(
        metric("fallback_skips_total", provider="agree-primary", reason=reason)
        for reason in ("open", "forced_open", "half_open_busy", "cooldown")
    )
    assert skipped > 0  # the breaker opened, and requests passed it by
    assert rows["agree-primary"].total.skipped == skipped
    assert rows["agree-secondary"].share == round(8 / 12, 4)
    assert rows["agree-primary"].share == round(4 / 12, 4)
    gave_up = {reason: count for reason, _, count, _ in rows["agree-primary"].gave_up}
    assert gave_up["server_error"] == metric(
        "fallback_failovers_total", from_provider="agree-primary", reason="server_error"
    )  # fmt: skip
    # Each provider's failed attempts by reason: /metrics' attempt histogram's count.
    for name in ("agree-primary", "agree-secondary"):
        failed = {reason: count for reason, _, count, _ in rows[name].failures_by_reason}
        assert failed  # both failed in the window
        for reason, count in failed.items():
            assert count == metric(
                "fallback_attempt_seconds_count", provider=name, outcome=reason
            ), (name, reason)
    assert (
        sum(count for _, _, count, _ in rows["agree-primary"].failures_by_reason)
        == rows["agree-primary"].total.failures
    )  # no rate limits or caller faults here

    html = page.content.decode()
    assert 'data-metric="failures_by_reason"' in html
    assert 'data-metric="requests"' in html
    assert "Requests = answered + failed" in html
    process_state_reset()
