"""`manage.py check_providers`: the same checks as beat, at once, as a table."""

import io

import pytest
from django.core.management import CommandError, call_command

from providers_app.models import BreakerState, HealthCheckResult


def _run(*args) -> str:
    out = io.StringIO()
    call_command("check_providers", *args, stdout=out)
    return out.getvalue()


def test_every_enabled_provider_is_checked_and_listed(alpha, beta, on_upstream):
    on_upstream(alpha)
    on_upstream(beta)
    on_upstream(beta, name="parked", enabled=False)

    output = _run()

    lines = output.splitlines()
    assert lines[0].split()[:3] == ["provider", "result", "latency"]
    assert [line.split()[:2] for line in lines[2:]] == [["alpha", "ok"], ["beta", "ok"]]
    assert (alpha.health_count, beta.health_count) == (1, 1)
    assert HealthCheckResult.objects.filter(ok=True).count() == 2


def test_a_failed_check_is_shown_and_fails_the_command(alpha, on_upstream):
    provider = on_upstream(alpha)
    alpha.set_fault("error", status=500)
    out = io.StringIO()

    with pytest.raises(CommandError, match="1 check\\(s\\) failed: alpha"):
        call_command("check_providers", stdout=out)

    assert "FAIL server_error" in out.getvalue()
    assert "500" in out.getvalue()
    assert BreakerState.objects.get(pk=provider.pk).state == "closed"  # one failure only


def test_three_runs_of_failures_open_the_breaker_as_beat_would(alpha, on_upstream):
    provider = on_upstream(alpha)
    alpha.set_fault("error", status=500)
    for _ in range(3):
        with pytest.raises(CommandError):
            _run("alpha")
    assert BreakerState.objects.get(pk=provider.pk).state == "open"


def test_named_providers_only_and_unknown_names_refused(alpha, beta, on_upstream):
    on_upstream(alpha)
    on_upstream(beta)
    assert [line.split()[0] for line in _run("beta").splitlines()[2:]] == ["beta"]
    assert alpha.health_count == 0
    with pytest.raises(CommandError, match="Unknown provider"):
        _run("gamma")


def test_all_includes_disabled_providers(alpha, on_upstream):
    on_upstream(alpha, enabled=False)
    assert _run().strip() == "No providers to check."
    assert "alpha" in _run("--all")
