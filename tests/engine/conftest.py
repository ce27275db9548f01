"""Fixtures for the engine: local fault-injecting upstreams, providers on them, a clock."""

import pytest

from providers_app.testing import process_state_reset
from tests.factories import provider_create


@pytest.fixture(autouse=True)
def _fresh_process_state():
    """Each test starts like a new worker process: nothing buffered or cached."""
    process_state_reset()
    yield
    process_state_reset()


@pytest.fixture
def providers(db, primary, secondary):
    """A primary and a secondary provider (one attempt each unless a test says otherwise)."""

    def make(**primary_fields):
        first = provider_create(
            **{
                "name": "primary",
                "base_url": primary.base_url,
                "max_attempts": 1,
                **primary_fields,
            }
        )
        second = provider_create(name="secondary", base_url=secondary.base_url)
        return first, second

    return make


HELLO = [{"role": "user", "content": "Say hello."}]
