"""Shared fixtures. Nothing Django is imported at module level, so the adapter and
simulator suites also run with `-p no:django`."""

import pytest


@pytest.fixture(autouse=True)
def _clear_cache():
    from django.conf import settings

    if not settings.configured:  # running with -p no:django
        yield
        return
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def make_provider(db):
    from tests.factories import provider_create

    return provider_create


@pytest.fixture
def fake_clock():
    """A clock the test steps; the failover layer reads time only through it."""
    from providers_app.services.clock import FakeClock, set_clock

    clock = FakeClock()
    previous = set_clock(clock)
    yield clock
    set_clock(previous)
