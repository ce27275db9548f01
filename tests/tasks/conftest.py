"""Fixtures for the background work: providers on local fault-injecting upstreams,
a fake clock, and each test starting like a fresh worker process."""

import pytest

from providers_app.services import counters, routing
from providers_app.services.adapter_pool import adapter_pool_clear
from providers_app.services.clock import FakeClock, set_clock
from providers_app.services.events import all_failed_events
from providers_app.simulator.server import UpstreamSimulator
from tests.factories import provider_create


@pytest.fixture(autouse=True)
def _fresh_process_state():
    """Nothing buffered or cached from another test."""
    counters.discard_pending()
    all_failed_events.reset()
    routing._last = None
    yield
    counters.discard_pending()
    adapter_pool_clear()


@pytest.fixture
def fake_clock():
    clock = FakeClock()
    previous = set_clock(clock)
    yield clock
    set_clock(previous)


@pytest.fixture(scope="session")
def _upstreams():
    # The factory's providers ask for "test-model"; a health check proves it is listed.
    with (
        UpstreamSimulator("alpha", model="test-model") as alpha,
        UpstreamSimulator("beta", model="test-model") as beta,
    ):
        yield alpha, beta


@pytest.fixture
def upstreams(_upstreams):
    for simulator in _upstreams:
        simulator.reset()
    yield _upstreams
    for simulator in _upstreams:
        simulator.reset()


@pytest.fixture
def alpha(upstreams):
    return upstreams[0]


@pytest.fixture
def beta(upstreams):
    return upstreams[1]


@pytest.fixture
def on_upstream(db):
    """A provider (OpenAI-compatible, no key) on the given simulator."""

    def make(simulator, **fields):
        fields.setdefault("name", simulator.name)
        return provider_create(base_url=simulator.base_url, **fields)

    return make
