"""`GET /metrics`: Prometheus text with the failover layer's counters, and breaker
gauges read from the database."""

from unittest import mock

import pytest
from django.db import DatabaseError
from prometheus_client.parser import text_string_to_metric_families

from providers_app.engine import fallback
from providers_app.engine.breaker import breaker_force_open
from providers_app.engine.metrics import DatabaseCollector
from providers_app.services import health

HELLO = [{"role": "user", "content": "Say hello."}]


def _scrape(client) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def _value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def pair(alpha, beta, on_upstream):
    """`alpha` first (two attempts), `beta` second."""
    return on_upstream(alpha, max_attempts=2), on_upstream(beta)


def test_requests_failovers_retries_and_latency_are_counted(client, pair, alpha):
    alpha.set_fault("error", status=500)
    before = _scrape(client)

    result = fallback.complete(HELLO)

    assert result.provider == "beta"
    after = _scrape(client)

    def delta(name, **labels):
        return _value(after, name, **labels) - _value(before, name, **labels)

    success = {"provider": "beta", "outcome": "success", "route": "fallback"}
    assert delta("fallback_requests_total", **success) == 1
    reason = {"from_provider": "alpha", "to_provider": "beta", "reason": "server_error"}
    assert delta("fallback_failovers_total", **reason) == 1
    assert delta("fallback_retries_total", provider="alpha") == 1
    assert delta("fallback_attempt_seconds_count", provider="alpha", outcome="server_error") == 2
    assert delta("fallback_attempt_seconds_count", provider="beta", outcome="success") == 1


def test_breaker_state_comes_from_the_database(client, pair, operator_user):
    first, _ = pair
    breaker_force_open(provider_id=first.pk, until=None, actor=operator_user)

    samples = _scrape(client)

    assert _value(samples, "fallback_breaker_state", provider="alpha", state="forced_open") == 1
    assert _value(samples, "fallback_breaker_state", provider="alpha", state="closed") == 0
    assert _value(samples, "fallback_breaker_state", provider="beta", state="closed") == 1
    assert _value(samples, "fallback_provider_enabled", provider="alpha") == 1


def test_health_checks_are_counted_with_their_streak(client, pair, alpha):
    first, _ = pair
    alpha.set_fault("error", status=503)
    before = _scrape(client)

    health.health_check_run(provider_id=first.pk, force=True)
    health.health_check_run(provider_id=first.pk, force=True)

    after = _scrape(client)
    checks = {"provider": "alpha", "ok": "false"}
    assert (
        _value(after, "fallback_health_checks_total", **checks)
        - _value(before, "fallback_health_checks_total", **checks)
        == 2
    )
    assert _value(after, "fallback_health_consecutive_failures", provider="alpha") == 2


def test_a_database_outage_leaves_the_process_counters_scrapable(client, pair):
    with mock.patch.object(DatabaseCollector, "_fill", side_effect=DatabaseError("down")):
        _scrape(client)
        samples = _scrape(client)  # the first scrape's error shows from the next one on
    assert not any(name == "fallback_breaker_state" for name, _ in samples)
    assert _value(samples, "fallback_store_errors_total", operation="metrics_scrape") >= 1


def test_gunicorn_config_empties_the_multiprocess_folder_at_start(tmp_path, monkeypatch):
    import runpy
    from pathlib import Path

    stale = tmp_path / "counter_4242.db"
    stale.write_bytes(b"left over by an earlier run")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    config = runpy.run_path(str(Path(__file__).parents[2] / "fallbackproject" / "gunicorn.conf.py"))

    config["on_starting"](None)

    assert not list(tmp_path.iterdir())
    assert config["timeout"] > 45  # above the request deadline


# ---------------------------------------------------------------------------
# Optional bearer token (FALLBACK_METRICS_TOKEN)
# ---------------------------------------------------------------------------

METRICS_TOKEN = "scrape-token-0123456789abcdef"


@pytest.mark.django_db
def test_metrics_are_open_without_a_token_configured(client):
    assert client.get("/metrics").status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong", f"Basic {METRICS_TOKEN}", f"Bearer {METRICS_TOKEN}x", "Bearer "],
)
def test_metrics_refuse_a_missing_or_wrong_token(client, settings, authorization):
    settings.FALLBACK_METRICS_TOKEN = METRICS_TOKEN
    headers = {"Authorization": authorization} if authorization else {}

    response = client.get("/metrics", headers=headers)

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert b"fallback_" not in response.content


@pytest.mark.django_db
def test_metrics_answer_the_right_token(client, settings):
    settings.FALLBACK_METRICS_TOKEN = METRICS_TOKEN

    response = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})

    assert response.status_code == 200
    assert b"fallback_" in response.content
