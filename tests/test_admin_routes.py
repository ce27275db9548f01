"""The route admin: members dragged into order, the next request follows, per route."""

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from providers_app.engine import fallback
from providers_app.models import Route, RouteMember
from providers_app.services.routes import route_create
from providers_app.testing import process_state_reset
from tests.api.fixtures import providers  # noqa: F401  (primary, secondary on simulators)

HELLO = [{"role": "user", "content": "Say hello."}]
PREFIX = "members"


@pytest.fixture(autouse=True)
def _fresh():
    process_state_reset()
    yield
    process_state_reset()


@pytest.fixture
def routes(providers):  # noqa: F811
    primary, secondary = providers
    return (
        route_create(name="chat", providers=[primary, secondary]),
        route_create(name="docs", providers=[primary, secondary]),
    )


def _login(client, django_user_model, *codenames, superuser=False):
    user = django_user_model.objects.create_user(
        "staff", password="pw", is_staff=True, is_superuser=superuser
    )
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="providers_app", codename__in=codenames)
    )
    client.force_login(user)
    return client


def route_form(route: Route, order: list[int]) -> dict:
    """The POST the route page sends after sortable2 renumbered the dragged rows:
    `order` is the new position of each existing member, in their current order."""
    members = list(route.members.order_by("order", "id"))
    data = {
        "name": route.name,
        "deadline_s": "",
        "failover_on_content_filter": "unknown",
        f"{PREFIX}-TOTAL_FORMS": str(len(members)),
        f"{PREFIX}-INITIAL_FORMS": str(len(members)),
        f"{PREFIX}-MIN_NUM_FORMS": "0",
        f"{PREFIX}-MAX_NUM_FORMS": "1000",
    }
    if route.is_default:
        data["is_default"] = "on"
    for i, (member, position) in enumerate(zip(members, order, strict=True)):
        data |= {
            f"{PREFIX}-{i}-id": str(member.pk),
            f"{PREFIX}-{i}-route": str(route.pk),
            f"{PREFIX}-{i}-provider": str(member.provider_id),
            f"{PREFIX}-{i}-order": str(position),
        }
    return data


def test_reordering_the_inline_changes_the_next_answer_on_that_route_only(
    client, django_user_model, routes, primary, secondary
):
    chat, _docs = routes
    _login(client, django_user_model, superuser=True)
    assert fallback.complete(HELLO, model="chat").provider == "primary"  # snapshot cached

    response = client.post(
        reverse("admin:providers_app_route_change", args=[chat.pk]), route_form(chat, [2, 1])
    )

    assert response.status_code == 302, response.content[:2000]
    assert fallback.complete(HELLO, model="chat").provider == "secondary"
    assert fallback.complete(HELLO, model="docs").provider == "primary"


def test_reordering_needs_the_reorder_permission(client, django_user_model, routes):
    chat, _ = routes
    _login(client, django_user_model, "view_route", "change_route")
    url = reverse("admin:providers_app_route_change", args=[chat.pk])

    refused = client.post(url, route_form(chat, [2, 1]))

    assert refused.status_code == 200  # the form again, with the reason
    assert b"may not reorder the providers of a route" in refused.content
    assert fallback.complete(HELLO, model="chat").provider == "primary"

    Permission.objects.get(codename="reorder_route").user_set.add(
        django_user_model.objects.get(username="staff")
    )
    assert client.post(url, route_form(chat, [2, 1])).status_code == 302
    assert fallback.complete(HELLO, model="chat").provider == "secondary"


def test_the_route_page_shows_each_members_breaker_and_the_provider_list_its_routes(
    client, django_user_model, routes
):
    chat, _ = routes
    _login(client, django_user_model, superuser=True)

    page = client.get(reverse("admin:providers_app_route_change", args=[chat.pk])).content
    providers_page = client.get(reverse("admin:providers_app_provider_changelist")).content

    assert page.count(b"Closed") >= 2
    assert b"routes: chat, docs" in providers_page


def test_adding_a_route_with_members_in_the_dragged_order(client, django_user_model, providers):  # noqa: F811
    primary, secondary = providers
    _login(client, django_user_model, superuser=True)
    data = {
        "name": "new",
        "is_default": "on",
        "deadline_s": "20",
        "failover_on_content_filter": "true",
        f"{PREFIX}-TOTAL_FORMS": "2",
        f"{PREFIX}-INITIAL_FORMS": "0",
        f"{PREFIX}-MIN_NUM_FORMS": "0",
        f"{PREFIX}-MAX_NUM_FORMS": "1000",
        f"{PREFIX}-0-provider": str(primary.pk),
        f"{PREFIX}-0-order": "2",
        f"{PREFIX}-1-provider": str(secondary.pk),
        f"{PREFIX}-1-order": "1",
    }

    response = client.post(reverse("admin:providers_app_route_add"), data)

    assert response.status_code == 302, response.content[:3000]
    route = Route.objects.get(name="new")
    assert (route.is_default, route.deadline_s, route.failover_on_content_filter) == (
        True,
        20,
        True,
    )
    assert list(
        RouteMember.objects.filter(route=route)
        .order_by("order")
        .values_list("provider__name", flat=True)
    ) == ["secondary", "primary"]
    assert fallback.complete(HELLO, model="anything").provider == "secondary"


def test_a_second_default_route_is_refused_with_a_message(client, django_user_model, routes):
    chat, docs = routes
    chat.is_default = True
    chat.save()
    _login(client, django_user_model, superuser=True)
    data = route_form(docs, [1, 2]) | {"is_default": "on"}

    response = client.post(reverse("admin:providers_app_route_change", args=[docs.pk]), data)

    assert response.status_code == 200
    assert b"chat is already the default route" in response.content


def test_removing_a_member_and_adding_it_again_elsewhere_needs_the_reorder_permission(
    client, django_user_model, routes
):
    chat, _ = routes
    _login(client, django_user_model, "view_route", "change_route")
    first, second = chat.members.order_by("order", "id")
    data = route_form(chat, [1, 2])
    # One POST: delete the first member and add the same provider again at the end.
    data |= {
        f"{PREFIX}-0-DELETE": "on",
        f"{PREFIX}-TOTAL_FORMS": "3",
        f"{PREFIX}-2-provider": str(first.provider_id),
        f"{PREFIX}-2-order": "3",
    }

    refused = client.post(reverse("admin:providers_app_route_change", args=[chat.pk]), data)

    assert refused.status_code == 200
    assert b"may not reorder the providers of a route" in refused.content
    assert list(chat.members.order_by("order").values_list("provider_id", flat=True)) == [
        first.provider_id,
        second.provider_id,
    ]
    assert fallback.complete(HELLO, model="chat").provider == "primary"


def test_the_delete_page_names_the_client_keys_a_route_limits(client, django_user_model, routes):
    from providers_app.services.client_keys import client_key_create

    chat, docs = routes
    only_chat = client_key_create(name="only-chat").client_key
    only_chat.routes.set([chat])
    both = client_key_create(name="both").client_key
    both.routes.set([chat, docs])
    _login(client, django_user_model, superuser=True)

    page = client.get(reverse("admin:providers_app_route_delete", args=[chat.pk])).content.decode()

    assert "ClientKey_routes object" not in page
    assert f"Client key {only_chat}: limited to route chat; afterwards refused on every route" in (
        page
    )
    assert f"Client key {both}: limited to route chat; afterwards limited to docs" in page
