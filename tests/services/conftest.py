"""Fixtures for health checks and housekeeping: providers on local fault-injecting upstreams,
a fake clock, and each test starting like a fresh worker process."""

import pytest

from providers_app.simulator.server import UpstreamSimulator
from providers_app.testing import process_state_reset
from tests.factories import provider_create


@pytest.fixture(autouse=True)
def _fresh_process_state():
    """Nothing buffered or cached from another test."""
    process_state_reset()
    yield
    process_state_reset()


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
