"""What the admin screens show: order and its audit trail, times with seconds,
the event log's search and its event page, the product's name and icon."""

import json
import re
from datetime import timedelta

import pytest
from django.contrib.staticfiles import finders
from django.urls import reverse
from django.utils import timezone

from providers_app.engine.routing import routing_table
from providers_app.models import FailoverEvent, Provider, Route
from providers_app.services import operator
from providers_app.services.routes import REORDER_REASON, route_create

CHANGELIST = reverse("admin:providers_app_provider_changelist")
EVENTS = reverse("admin:providers_app_failoverevent_changelist")
SECONDS = re.compile(r"\b\d\d:\d\d:\d\d\b")


@pytest.fixture
def ops_user(django_user_model):
    return django_user_model.objects.create_superuser("ops", "ops@example.com", "pw")


@pytest.fixture
def staff_client(client, ops_user):
    client.force_login(ops_user)
    return client


@pytest.fixture
def three(make_provider):
    return [make_provider(name=name) for rank, name in enumerate("abc", start=1)]


def _names(model: str | None = None) -> list[str]:
    """Who the next request naming `model` would try, in order."""
    return [entry.name for entry in routing_table().resolve(model).entries]


def _move(client, provider, direction, route: str = ""):
    query = f"?route={route}" if route else ""
    return client.post(
        reverse("admin:providers_app_provider_move", args=[provider.pk, direction]) + query
    )


def test_a_drag_without_any_route_creates_the_default_route_in_the_new_order(
    staff_client, ops_user, three
):
    a, b, c = three
    response = staff_client.post(
        reverse("admin:providers_app_provider_sortable_update"),
        data=json.dumps({"updatedItems": [[c.pk, 1], [a.pk, 2], [b.pk, 3]]}),
        content_type="application/json",
    )
    assert response.status_code == 200

    assert _names() == ["c", "a", "b"]
    route = Route.objects.get()
    assert (route.name, route.is_default) == ("fallback", True)
    event = FailoverEvent.objects.get(kind=FailoverEvent.Kind.MANUAL, reason=REORDER_REASON)
    assert event.actor == ops_user
    assert event.provider == c  # filed under the provider that moved furthest
    assert (event.route, event.detail) == ("fallback", "route fallback, new order: c, a, b")
    page = staff_client.get(CHANGELIST).content.decode()
    assert "New order of route fallback saved: 1. c, 2. a, 3. b." in page


def test_the_list_shows_and_reorders_the_chosen_route_only(staff_client, three):
    a, b, c = three
    route_create(name="chat", providers=[a, b, c], is_default=True)
    route_create(name="fast", providers=[c, a])
    page = staff_client.get(CHANGELIST + "?route=fast").content.decode()
    assert '<option value="fast" selected>fast</option>' in page
    assert "not in route" in page  # b

    response = staff_client.post(
        reverse("admin:providers_app_provider_sortable_update") + "?route=fast",
        data=json.dumps({"updatedItems": [[a.pk, 1], [c.pk, 2]]}),
        content_type="application/json",
    )

    assert response.status_code == 200
    assert _names("fast") == ["a", "c"]
    assert _names("chat") == _names() == ["a", "b", "c"]  # the other route is untouched
    _move(staff_client, c, "up", route="fast")
    assert _names("fast") == ["c", "a"]
    assert _names("chat") == ["a", "b", "c"]


def test_a_reorder_with_a_bad_payload_is_a_400_and_changes_nothing(staff_client, three):
    response = staff_client.post(
        reverse("admin:providers_app_provider_sortable_update"),
        data="{not json",
        content_type="application/json",
    )
    assert response.status_code == 400
    assert _names() == ["a", "b", "c"]
    assert not FailoverEvent.objects.exists()


def test_a_drag_of_a_provider_outside_the_route_is_refused_with_a_message(staff_client, three):
    a, b, c = three
    route_create(name="chat", providers=[a, c], is_default=True)
    response = staff_client.post(
        reverse("admin:providers_app_provider_sortable_update"),
        data=json.dumps({"updatedItems": [[b.pk, 1], [a.pk, 2]]}),
        content_type="application/json",
    )

    assert response.status_code == 400
    assert _names() == ["a", "c"]
    assert not FailoverEvent.objects.exists()
    page = staff_client.get(CHANGELIST).content.decode()
    assert "The new order was not saved: Not in route chat" in page


def test_keyboard_move_up_and_down_reorders_with_an_event(staff_client, ops_user, three):
    a, _, c = three
    response = _move(staff_client, c, "up")
    assert response.status_code == 302
    assert response["Location"].endswith(f"#move-{c.pk}-up")  # focus returns to the button
    assert _names() == ["a", "c", "b"]
    _move(staff_client, a, "down")
    assert _names() == ["c", "a", "b"]
    _move(staff_client, c, "up")  # already first: stays first
    assert _names() == ["c", "a", "b"]

    events = FailoverEvent.objects.filter(reason=REORDER_REASON)
    assert events.count() == 3
    assert {e.actor for e in events} == {ops_user}
    page = staff_client.get(CHANGELIST).content.decode()
    assert "New order of route fallback saved: 1. c, 2. a, 3. b." in page


def test_the_list_has_keyboard_move_buttons_and_the_route_s_numbers(staff_client, three):
    a, b, c = three
    route_create(name="chat", providers=[c, a, b], is_default=True)
    page = staff_client.get(CHANGELIST).content.decode()
    assert "Order of route" in page
    assert '<option value="chat" selected>chat (default)' in page
    for number, provider in enumerate((c, a, b), start=1):
        assert f'aria-label="Move {provider.name} up"' in page
        assert f'<span class="number">{number}</span>' in page
    assert page.index("Move c up") < page.index("Move a up") < page.index("Move b up")


def test_moving_needs_post_a_known_direction_and_the_change_permission(
    client, staff_client, django_user_model, three
):
    from django.contrib.auth.models import Permission

    assert staff_client.get(
        reverse("admin:providers_app_provider_move", args=[three[0].pk, "up"])
    ).status_code == 405  # fmt: skip
    assert _move(staff_client, three[0], "sideways").status_code == 404
    viewer = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_provider"))
    client.force_login(viewer)
    assert _move(client, three[2], "up").status_code == 403
    assert _names() == ["a", "b", "c"]


def test_breaker_times_have_seconds_and_say_how_far_off(staff_client, ops_user, three):
    until = timezone.now() + timedelta(minutes=5)
    operator.operator_breaker_force_open(provider_id=three[0].pk, until=until, actor=ops_user)

    listing = staff_client.get(CHANGELIST).content.decode()
    page = staff_client.get(
        reverse("admin:providers_app_provider_change", args=[three[0].pk])
    ).content.decode()

    for content in (listing, page):
        assert f"{timezone.localtime(until):%H:%M:%S}" in content
        assert "(in 4 min)" in content
        assert f".{until:%f}" not in content  # no raw ISO string with microseconds


def test_event_log_search_covers_provider_names(staff_client, three):
    a, b, _ = three
    FailoverEvent.objects.create(kind="failover", provider=a, to_provider=b, reason="timeout")
    FailoverEvent.objects.create(kind="breaker_opened", provider=b, reason="server_error")
    FailoverEvent.objects.create(kind="failover", provider=b, to_provider=a, reason="reset")

    content = staff_client.get(EVENTS, {"q": "a"}).content.decode()
    # "a" is from-provider of one and to-provider of another; "b" alone is not.
    assert content.count('class="field-time"') == 2


def test_event_log_shows_seconds_and_rounded_latency_and_the_event_page_its_time(
    staff_client, three
):
    event = FailoverEvent.objects.create(
        kind="failover", provider=three[0], reason="server_error", latency_ms=23.642311000003247
    )
    listing = staff_client.get(EVENTS).content.decode()
    page = staff_client.get(
        reverse("admin:providers_app_failoverevent_change", args=[event.pk])
    ).content.decode()

    assert "23.6 ms" in listing
    assert "23.642311" not in listing
    assert SECONDS.search(listing)
    assert f"{timezone.localtime(event.created_at):%H:%M:%S}" in page
    assert "23.6 ms" in page
    assert "23.642311" not in page


def test_the_admin_names_the_product_and_view_site_opens_the_chat(staff_client):
    index = staff_client.get(reverse("admin:index")).content.decode()
    assert "LLM fallback administration" in index
    assert "Django administration" not in index
    assert f'href="{reverse("chat")}"' in index  # "View site"


def test_favicon_is_served(client, db):
    response = client.get("/favicon.ico")
    assert response.status_code == 302
    assert response["Location"].endswith("providers_app/favicon.png")
    assert finders.find("providers_app/favicon.png")


def test_the_kind_column_is_short(staff_client, make_provider):
    make_provider(kind=Provider.Kind.OPENAI_COMPATIBLE)
    content = staff_client.get(CHANGELIST).content.decode()
    assert '<td class="field-kind_short">OpenAI-compatible</td>' in content
