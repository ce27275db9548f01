"""A real Celery worker and beat write health results and open a breaker after failed checks.

`.ci/run` starts the worker and beat (Redis broker, PostgreSQL database, checks
every second) and runs this module with FALLBACK_INTEGRATION=1 against that same
database. The test does not use pytest-django's test database: it writes a
provider the worker can see (committed, in the worker's database), points it
at a local fault-injecting upstream, and watches what the worker does.
"""

import os
import time
import uuid
from collections.abc import Callable

import pytest
from django.db import connection

from providers_app.models import BreakerState, FailoverEvent, HealthCheckResult, Provider
from providers_app.simulator.server import UpstreamSimulator
from tests.factories import provider_create

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        os.environ.get("FALLBACK_INTEGRATION") != "1",
        reason="needs the worker and beat that .ci/run starts (FALLBACK_INTEGRATION=1)",
    ),
]

WAIT_S = 45.0  # generous for a loaded CI box; with 1 s checks it takes a few seconds


@pytest.fixture
def worker_database(django_db_blocker):
    """The database the worker uses, not a test copy of it."""
    expected = os.environ.get("FALLBACK_INTEGRATION_DATABASE_NAME")
    with django_db_blocker.unblock():
        name = connection.settings_dict["NAME"]
        if expected and name != expected:
            pytest.fail(
                f"connected to {name!r}, but the worker uses {expected!r}: run this module "
                "on its own, as .ci/run does, so pytest-django does not swap in a test database"
            )
        yield
        connection.close()


@pytest.fixture
def upstream():
    with UpstreamSimulator("worker-upstream", model="test-model") as simulator:
        yield simulator


@pytest.fixture
def watched(worker_database, upstream):
    provider = provider_create(name=f"worker-{uuid.uuid4().hex[:8]}", base_url=upstream.base_url)
    try:
        yield provider
    finally:
        FailoverEvent.objects.filter(provider=provider).delete()
        Provider.objects.filter(pk=provider.pk).delete()


def _wait_for(what: str, condition: Callable[[], bool]) -> None:
    give_up = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > give_up:
            pytest.fail(f"the worker did not {what} within {WAIT_S:g} s (see the worker log)")
        time.sleep(0.25)


def test_the_worker_records_health_and_opens_a_breaker_after_failed_checks(watched, upstream):
    results = HealthCheckResult.objects.filter(provider=watched)

    _wait_for("record a passing check", lambda: results.filter(ok=True).exists())
    assert upstream.health_count >= 1  # the worker called the upstream, not this process
    assert BreakerState.objects.get(pk=watched.pk).state == BreakerState.State.CLOSED

    upstream.set_fault("error", status=503)

    _wait_for(
        "open the breaker",
        lambda: BreakerState.objects.get(pk=watched.pk).state == BreakerState.State.OPEN,
    )
    opened = FailoverEvent.objects.get(provider=watched, kind=FailoverEvent.Kind.BREAKER_OPENED)
    assert opened.reason == "health_check"
    assert results.filter(ok=False, status_code=503).count() >= 3
    failed = FailoverEvent.objects.filter(provider=watched, kind=FailoverEvent.Kind.HEALTH_FAILED)
    assert failed.count() == 1  # one event for the streak, however many checks

    upstream.set_fault("ok")

    _wait_for(
        "bring the half-open probe forward",
        lambda: FailoverEvent.objects.filter(
            provider=watched, kind=FailoverEvent.Kind.HEALTH_RECOVERED
        ).exists(),
    )
    # A passing check never closes the breaker: only real traffic does.
    assert BreakerState.objects.get(pk=watched.pk).state == BreakerState.State.OPEN
