"""Named routes in the engine: route order, shared breakers, per-route settings, the snapshot."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from providers_app.engine import fallback
from providers_app.engine.routing import routing_table, routing_version
from providers_app.models import BreakerState, Route, RouteMember
from providers_app.services.routes import route_create, route_members_set
from providers_app.testing import breaker_state_set

from .conftest import HELLO


@pytest.fixture
def two_routes(providers):
    first, second = providers()
    return (
        route_create(name="fast", providers=[second, first]),
        route_create(name="large", providers=[first, second]),
        first,
        second,
    )


def test_each_route_follows_its_own_order(two_routes):
    assert fallback.complete(HELLO, model="fast").provider == "secondary"
    assert fallback.complete(HELLO, model="large").provider == "primary"
    assert fallback.complete(HELLO, model="large").route == "large"


def test_an_unknown_route_without_a_default_raises_route_not_found(two_routes):
    with pytest.raises(fallback.RouteNotFound):
        fallback.complete(HELLO, model="nonesuch")
    with pytest.raises(fallback.RouteNotFound):
        fallback.complete(HELLO)  # no name, no default


def test_the_default_route_serves_other_names(two_routes):
    fast = two_routes[0]
    fast.is_default = True
    fast.save()
    assert fallback.complete(HELLO, model="gpt-4o").provider == "secondary"
    assert fallback.complete(HELLO).route == "fast"


def test_an_open_breaker_is_skipped_on_every_route_that_shares_the_provider(two_routes, primary):
    _, _, first, _ = two_routes
    breaker_state_set(
        first, state=BreakerState.State.OPEN, open_until=timezone.now() + timedelta(minutes=5)
    )

    result = fallback.complete(HELLO, model="large")

    assert result.provider == "secondary"
    assert [s.provider for s in result.skipped] == ["primary"]
    assert primary.request_count == 0


def test_a_disabled_provider_drops_out_of_its_routes(two_routes, secondary):
    _, _, _, second = two_routes
    second.enabled = False
    second.save()
    assert fallback.complete(HELLO, model="fast").provider == "primary"
    assert secondary.request_count == 0


def test_the_route_deadline_applies_when_the_caller_sets_none(two_routes, settings):
    settings.FALLBACK_DEADLINE_S = 45.0
    fast, _, _, _ = two_routes
    fast.deadline_s = 3.0
    fast.save()
    request = fallback.build_request(HELLO)

    def deadline(route, deadline_s=None):
        resolved = fallback.route_for(route)
        return fallback.RouteRun(request, None, deadline_s, resolved).deadline.remaining()

    assert 2.5 < deadline("fast") <= 3.0
    assert 40 < deadline("large") <= 45.0  # no deadline of its own: the setting
    assert 9 < deadline("fast", deadline_s=10.0) <= 10.0  # the caller's own wins


@pytest.mark.parametrize(("choice", "expected"), [(True, "secondary"), (False, None)])
def test_the_route_chooses_whether_a_content_filter_fails_over(
    two_routes, primary, settings, choice, expected
):
    settings.FALLBACK_FAILOVER_ON_CONTENT_FILTER = not choice  # the route overrides it
    _, large, _, _ = two_routes
    large.failover_on_content_filter = choice
    large.save()
    primary.set_fault("error", status=400, code="content_filter", message="filtered")

    if expected:
        assert fallback.complete(HELLO, model="large").provider == expected
    else:
        with pytest.raises(fallback.RequestFailed) as raised:
            fallback.complete(HELLO, model="large")
        assert raised.value.error.category == "content_filter"


def test_a_route_that_holds_back_restarts_a_cut_stream_on_the_next_provider(
    two_routes, primary, secondary
):
    _, large, _, _ = two_routes
    large.hold_back = True
    large.save()
    primary.set_fault("truncate_stream", chunks=2)

    chat = fallback.stream(HELLO, model="large")
    text = "".join(chunk.text for chunk in chat)

    assert chat.provider == "secondary"
    assert chat.continued_from == []  # restarted, not continued
    assert "secondary" in text


def test_route_and_member_writes_move_the_routing_version(two_routes):
    fast, _, first, _second = two_routes
    before = routing_version()
    RouteMember.objects.filter(route=fast, provider=first).update(order=7)
    after_reorder = routing_version()
    Route.objects.filter(pk=fast.pk).update(deadline_s=9)
    assert before < after_reorder < routing_version()


def test_a_reorder_is_followed_by_the_next_request_with_one_version_read(two_routes):
    fast, _, first, second = two_routes
    assert fallback.complete(HELLO, model="fast").provider == "secondary"
    routing_table()  # cached
    with CaptureQueriesContext(connection) as unchanged:
        routing_table()
    assert len(unchanged) == 1  # the version row only

    route_members_set(route=fast, providers=[first, second])

    assert fallback.complete(HELLO, model="fast").provider == "primary"
    assert fallback.complete(HELLO, model="large").provider == "primary"


def test_requests_are_counted_per_route_in_metrics(two_routes):
    from providers_app.engine import metrics

    def count(route: str) -> float:
        sample = metrics.REQUESTS.labels(provider="secondary", outcome="success", route=route)
        return sample._value.get()

    before = (count("fast"), count("large"))
    fallback.complete(HELLO, model="fast")
    assert (count("fast"), count("large")) == (before[0] + 1, before[1])


def test_a_cut_stream_is_continued_by_a_provider_of_the_same_route_only(db, primary, secondary):
    from providers_app.models import FailoverEvent
    from tests.factories import provider_create

    first = provider_create(name="primary", base_url=primary.base_url)
    provider_create(name="outside", base_url=secondary.base_url, continuation="trailing_assistant")
    inside = provider_create(
        name="inside", base_url=secondary.base_url, continuation="trailing_assistant"
    )
    route_create(name="chat", providers=[first, inside])
    primary.set_fault("truncate_stream", chunks=3)

    chat = fallback.stream(HELLO, model="chat")
    "".join(chunk.text for chunk in chat)

    assert (chat.finished_by, chat.continued_from) == ("inside", ["primary"])
    event = FailoverEvent.objects.get(kind=FailoverEvent.Kind.CONTINUATION)
    assert (event.to_provider.name, event.route) == ("inside", "chat")
