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

    page = client.get(reverse("admin:providers_app_dashboard_changelist")).context["dashboard"]
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
