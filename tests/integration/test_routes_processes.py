"""Two routes share one provider's breaker across processes (PostgreSQL).

A spawned worker process sends traffic on route `chat` until the shared
primary's breaker opens; this process, which read the routing snapshot before
(with the primary closed), then asks route `docs`: the primary is skipped as
open without being called, and the secondary answers.
"""

import pytest

from providers_app.engine import fallback
from providers_app.models import BreakerState, FailoverEvent
from providers_app.services.routes import route_create

from .procs import HELLO, Burst, WorkerPool

pytestmark = [
    pytest.mark.integration,
    pytest.mark.postgres,
    pytest.mark.usefixtures("postgresql_only", "fresh_process_state"),
]

FAILURE_THRESHOLD = 5  # FALLBACK_BREAKER_FAILURE_THRESHOLD's default


@pytest.fixture(scope="module")
def one_worker(postgresql_only, worker_env):
    with WorkerPool(1, worker_env()) as pool:
        yield pool


def test_a_breaker_opened_by_one_route_is_skipped_by_the_other_in_another_process(
    one_worker, providers, primary, secondary
):
    first, second = providers()
    route_create(name="chat", providers=[first, second])
    route_create(name="docs", providers=[first, second])
    # This process reads (and keeps) a snapshot in which the primary is closed.
    assert fallback.complete(HELLO, model="docs").provider == "primary"
    primary.reset()

    primary.set_fault("error", status=500)
    outcomes = one_worker.run(Burst(1, requests=FAILURE_THRESHOLD, route="chat"), workers=1)

    assert [o.provider for o in outcomes] == ["secondary"] * FAILURE_THRESHOLD
    assert primary.request_count == FAILURE_THRESHOLD
    assert BreakerState.objects.get(pk=first.pk).state == BreakerState.State.OPEN
    opened = FailoverEvent.objects.get(kind=FailoverEvent.Kind.BREAKER_OPENED)
    assert opened.provider_id == first.pk
    assert set(FailoverEvent.objects.filter(kind="failover").values_list("route", flat=True)) == {
        "chat"
    }

    result = fallback.complete(HELLO, model="docs")

    assert result.provider == "secondary"
    assert [(s.provider, s.reason) for s in result.skipped] == [("primary", "open")]
    assert primary.request_count == FAILURE_THRESHOLD  # not called from route docs
