"""Fixtures shared by the chat-surface tests (API, chatbot page, `chat` command).

Imported by `tests/api/conftest.py` and by the page and command test modules, so
each gets local simulated upstreams, providers on them and a client key.
"""

import pytest

from providers_app.services.client_keys import client_key_create
from providers_app.testing import process_state_reset
from tests.factories import provider_create

__all__ = [
    "PRIMARY_MODEL",
    "SECONDARY_MODEL",
    "_fresh_engine_state",
    "api_key",
    "auth",
    "providers",
]

PRIMARY_MODEL = "gpt-primary"
SECONDARY_MODEL = "gpt-secondary"


@pytest.fixture(autouse=True)
def _fresh_engine_state(settings):
    """Each test starts like a new worker: nothing buffered or cached, no waits."""
    settings.FALLBACK_BACKOFF_BASE_S = 0.001
    settings.FALLBACK_BACKOFF_MAX_S = 0.001
    process_state_reset()
    yield
    process_state_reset()


@pytest.fixture
def providers(db, primary, secondary):
    """`primary` then `secondary`, one attempt each, on the two simulators."""
    return (
        provider_create(
            name="primary",
            base_url=primary.base_url,
            model=PRIMARY_MODEL,
            max_attempts=1,
        ),
        provider_create(
            name="secondary",
            base_url=secondary.base_url,
            model=SECONDARY_MODEL,
            max_attempts=1,
        ),
    )


@pytest.fixture
def api_key(db) -> str:
    return client_key_create(name="test-bot").raw_key


@pytest.fixture
def auth(api_key) -> dict[str, str]:
    """Headers for the Django test client."""
    return {"Authorization": f"Bearer {api_key}"}
