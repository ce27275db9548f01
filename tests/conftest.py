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

    from providers_app.engine.routing import routing_snapshot_forget

    cache.clear()
    # A test's rolled-back transaction takes its routing-version bumps with it, so
    # the next test could reach the same version number with other providers.
    # Production readers never see uncommitted versions; tests forget instead.
    routing_snapshot_forget()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def _reasons_are_one_vocabulary():
    """Issue 23 item 10, suite-wide: every reason an event or a metric label gets
    while the suite runs is a member of providers_app.reasons.Reason."""
    from django.conf import settings

    if not settings.configured:  # running with -p no:django
        yield
        return
    from django.db.models.signals import pre_save

    from providers_app.engine import tracing
    from tests.reason_check import bare_metric_reasons, check_event_reason, check_trace_reasons

    save = tracing._TraceBuffer._save  # traces are bulk-created: no pre_save

    def checked_save(traces):
        check_trace_reasons(traces)
        return save(traces)

    pre_save.connect(check_event_reason, dispatch_uid="reason-check")
    tracing._TraceBuffer._save = staticmethod(checked_save)
    try:
        yield
    finally:
        pre_save.disconnect(dispatch_uid="reason-check")
        tracing._TraceBuffer._save = staticmethod(save)
    bare = bare_metric_reasons()
    assert not bare, f"reasons outside the vocabulary (providers_app/reasons.py): {bare}"


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
