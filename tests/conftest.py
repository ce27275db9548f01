"""Shared fixtures. Nothing Django is imported at module level, so the adapter and
simulator suites also run with `-p no:django`."""

import os
from datetime import UTC, datetime, time

import pytest


def _pinned_start(value: str) -> datetime:
    """ "23:58:30" is that time today (UTC); anything else is an ISO datetime."""
    try:
        return datetime.combine(datetime.now(UTC).date(), time.fromisoformat(value), tzinfo=UTC)
    except ValueError:
        moment = datetime.fromisoformat(value)
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@pytest.fixture(scope="session", autouse=True)
def _pinned_application_clock():
    """`FALLBACK_TEST_CLOCK=23:58:30` runs the application, live server included,
    with its wall clock starting at that hour (time still flows). `.ci/run` runs
    the browser and admin tests so, to prove no screen depends on the hour the
    suite happens to run at. Django's own `timezone.now` (used for `auto_now`
    fields) follows the same clock, so rows and screens agree."""
    value = os.environ.get("FALLBACK_TEST_CLOCK")
    if not value:
        yield None
        return
    from providers_app.adapters.timing import PinnedClock, set_clock

    clock = PinnedClock(_pinned_start(value))
    previous = set_clock(clock)
    with pytest.MonkeyPatch.context() as patch:
        try:
            from django.utils import timezone
        except ImportError:  # the adapter suite may run without Django
            pass
        else:
            patch.setattr(timezone, "now", clock.now)
        yield clock
    set_clock(previous)


@pytest.fixture(autouse=True)
def _clear_cache():
    from django.conf import settings

    if not settings.configured:  # running with -p no:django
        yield
        return
    from django.core.cache import cache

    from providers_app.engine.routing import routing_snapshot_forget

    cache.clear()
    # A test's rolled-back transaction takes its routing-version bumps with it, so
    # the next test could reach the same version number with other providers.
    # Production readers never see uncommitted versions; tests forget instead.
    routing_snapshot_forget()
    yield
    cache.clear()


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup):
    """pytest-django's test database, plus: the routing change listener (a
    PostgreSQL connection of its own) stops before the database is dropped."""
    yield
    from providers_app.engine.routing import change_listener

    change_listener.stop()


@pytest.fixture
def make_provider(db):
    from tests.factories import provider_create

    return provider_create


@pytest.fixture
def fake_clock():
    """A clock the test steps; the failover layer reads time only through it."""
    from providers_app.engine.clock import FakeClock, set_clock

    clock = FakeClock()
    previous = set_clock(clock)
    yield clock
    set_clock(previous)


@pytest.fixture(scope="session")
def _simulators():
    """Two local fault-injecting upstreams for the whole run (they start in ms)."""
    from providers_app.simulator.server import UpstreamSimulator

    with UpstreamSimulator("primary") as primary, UpstreamSimulator("secondary") as secondary:
        yield primary, secondary


@pytest.fixture
def primary(_simulators):
    """The first upstream, answering normally and with zeroed counters."""
    _simulators[0].reset()
    yield _simulators[0]
    _simulators[0].reset()


@pytest.fixture
def secondary(_simulators):
    _simulators[1].reset()
    yield _simulators[1]
    _simulators[1].reset()
