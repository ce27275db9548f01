"""Fixtures for the cross-process breaker tests (test_breaker_processes.py):
PostgreSQL only, real wall-clock time, local upstream simulators, and a pool of
spawned worker processes. Nothing here is autouse: other modules in this
directory (test_worker.py) are left alone.

The pool is module-scoped: spawning a process and running `django.setup()` costs
about a second each on a small machine, so the workers are reused by every round
of every test in the module. They survive pytest-django's flush after each
`transactional_db` test because they keep no database connection between rounds.
"""

import pytest

from providers_app.testing import process_state_reset
from tests.factories import provider_create

from .procs import WorkerPool, child_env

POOL_SIZE = 8
BARRIER_SIZES = (4, 8)


def _on_postgresql() -> bool:
    from django.db import connection

    return connection.vendor == "postgresql"


@pytest.fixture(scope="module")
def postgresql_only():
    """SQLite locks the whole file: these races are only meaningful on PostgreSQL."""
    if not _on_postgresql():
        pytest.skip("cross-process breaker tests need DATABASE_URL to point at PostgreSQL")


@pytest.fixture
def fresh_process_state():
    """The test process also calls complete(): start it with nothing buffered or cached."""
    process_state_reset()
    yield
    process_state_reset()


@pytest.fixture(scope="module")
def worker_env(postgresql_only, django_db_setup):
    """The environment a worker needs to reach the TEST database (not `test`)."""
    from django.db import connection

    return lambda **fallback_settings: child_env(connection.settings_dict, **fallback_settings)


@pytest.fixture(scope="module")
def worker_pool(postgresql_only, worker_env):
    with WorkerPool(POOL_SIZE, worker_env(), BARRIER_SIZES) as pool:
        yield pool


@pytest.fixture
def providers(postgresql_only, fresh_process_state, transactional_db, primary, secondary):
    """A primary (one attempt per request) and a secondary, committed so that
    every worker process sees them."""

    def make(**primary_fields):
        first = provider_create(
            name="primary", base_url=primary.base_url, max_attempts=1,
            **primary_fields,
        )  # fmt: skip
        second = provider_create(name="secondary", base_url=secondary.base_url)
        return first, second

    return make
