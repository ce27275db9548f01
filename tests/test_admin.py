"""The provider admin: drag-and-drop order, validation messages, read-only history."""

import json

import pytest
from django.urls import reverse

from providers_app.engine.routing import routing_table
from providers_app.models import FailoverEvent, Provider, Route
from providers_app.services.routes import route_create
from tests.factories import provider_admin_form

REORDER_URL = "admin:providers_app_provider_sortable_update"


@pytest.fixture
def staff_client(client, django_user_model):
    user = django_user_model.objects.create_user(
        "staff", password="pw", is_staff=True, is_superuser=True
    )
    client.force_login(user)
    return client


def test_admin_reorder_changes_the_routing_order_on_the_next_read(staff_client, make_provider):
    first, second, third = (make_provider() for _ in range(3))
    assert _default_route_names() == [first.name, second.name, third.name]

    # Drag "third" to the top: the payload sortable2's list view sends.
    response = staff_client.post(
        reverse(REORDER_URL),
        data=json.dumps({"updatedItems": [[third.pk, 1], [first.pk, 2], [second.pk, 3]]}),
        content_type="application/json",
    )

    assert response.status_code == 200, response.content
    assert _default_route_names() == [third.name, first.name, second.name]


def _default_route_names() -> list[str]:
    return [e.name for e in routing_table().resolve(None).entries]


def test_reorder_that_swaps_two_providers_succeeds(staff_client, make_provider):
    first, second = make_provider(), make_provider()
    route_create(name="chat", providers=[first, second], is_default=True)
    response = staff_client.post(
        reverse(REORDER_URL),
        data=json.dumps({"updatedItems": [[first.pk, 2], [second.pk, 1]]}),
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    assert _default_route_names() == [second.name, first.name]


def test_non_staff_user_cannot_reach_the_admin(client, django_user_model, make_provider):
    provider = make_provider()
    user = django_user_model.objects.create_user("user", password="pw")
    client.force_login(user)
    for url in (
        reverse("admin:providers_app_provider_changelist"),
        reverse("admin:providers_app_provider_change", args=[provider.pk]),
    ):
        response = client.get(url)
        assert response.status_code == 302
        assert reverse("admin:login") in response["Location"]
    response = client.post(
        reverse(REORDER_URL),
        data=json.dumps({"updatedItems": [[provider.pk, 9]]}),
        content_type="application/json",
    )
    assert response.status_code == 302
    assert not Route.objects.exists()  # the first reorder would have created one


def test_changelist_shows_order_kind_model_and_breaker_state(staff_client, make_provider):
    make_provider(name="alpha", model="gpt-x")
    content = staff_client.get(reverse("admin:providers_app_provider_changelist")).content.decode()
    assert "alpha" in content
    assert "gpt-x" in content
    assert "Closed" in content


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"base_url": "ftp://x"}, "http"),
        ({"timeout_s": "0"}, "greater than or equal"),
        ({"api_key_env": "sk-abc def"}, "environment variable"),
        ({"failure_rate_threshold": "150"}, "less than or equal"),
        ({"half_open_probes": "20"}, "less than or equal"),
        ({"open_base_s": "500", "open_max_s": "100"}, "must not exceed"),
        ({"kind": "azure_openai", "base_url": "https://x.openai.azure.com"}, "api-version"),
        ({"extra": '{"headers": {"Authorization": "Bearer sk-123"}}'}, "credential"),
    ],
)
def test_admin_form_refuses_invalid_config_with_a_message(staff_client, db, overrides, message):
    response = staff_client.post(
        reverse("admin:providers_app_provider_add"), data=provider_admin_form(**overrides)
    )
    assert response.status_code == 200  # the form again, not a redirect
    assert message in response.content.decode()
    assert not Provider.objects.filter(name="new-one").exists()


def test_admin_form_creates_a_valid_provider_at_the_end_of_the_default_route(
    staff_client, make_provider
):
    old = make_provider(name="old")
    route_create(name="chat", providers=[old], is_default=True)
    response = staff_client.post(
        reverse("admin:providers_app_provider_add"), data=provider_admin_form()
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert _default_route_names() == ["old", "new-one"]


def test_provider_page_shows_breaker_read_only_and_never_the_key(
    staff_client, make_provider, monkeypatch
):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-live-very-secret-value")
    provider = make_provider(kind="openai", api_key_env="OPENAI_API_KEY")
    url = reverse("admin:providers_app_provider_change", args=[provider.pk])
    content = staff_client.get(url).content.decode()
    assert "Breaker state (read-only)" in content
    assert 'name="state"' not in content  # no input for breaker fields
    assert "sk-live-very-secret-value" not in content
    assert "OPENAI_API_KEY" in content


def test_history_admins_are_read_only(staff_client, make_provider):
    provider = make_provider()
    event = FailoverEvent.objects.create(kind="failover", provider=provider, reason="server_error")
    assert staff_client.get(reverse("admin:providers_app_failoverevent_add")).status_code == 403
    url = reverse("admin:providers_app_failoverevent_change", args=[event.pk])
    content = staff_client.get(url).content.decode()
    assert "server_error" in content
    assert 'name="_save"' not in content
    changelist = staff_client.get(
        reverse("admin:providers_app_failoverevent_changelist"), {"q": "nothing"}
    )
    assert changelist.status_code == 200
    health = staff_client.get(reverse("admin:providers_app_healthcheckresult_changelist"))
    assert health.status_code == 200


# ---------------------------------------------------------------------------
# Client keys: shown once on the page that answers the creating POST
# ---------------------------------------------------------------------------


def test_a_new_client_key_is_shown_once_on_its_own_page_and_never_stored(staff_client, db):
    from providers_app.models import ClientKey
    from providers_app.services.client_keys import client_key_authenticate

    response = staff_client.post(reverse("admin:providers_app_clientkey_add"), {"name": "bot"})

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    raw_key = response.context["raw_key"]
    assert raw_key.startswith("fbk_")
    assert raw_key in response.content.decode()
    assert client_key_authenticate(raw_key=raw_key).name == "bot"
    # Not in a message cookie, the session, the key row or the admin history.
    assert all(raw_key not in morsel.value for morsel in response.cookies.values())
    assert raw_key not in str(staff_client.session.items())
    assert raw_key not in str(list(ClientKey.objects.values()))
    from django.contrib.admin.models import LogEntry

    assert raw_key not in str(list(LogEntry.objects.values()))
    # The list afterwards does not show it again.
    listing = staff_client.get(reverse("admin:providers_app_clientkey_changelist"))
    assert raw_key not in listing.content.decode()


def test_revoking_a_key_is_recorded_and_refuses_the_key(staff_client, db):
    from django.contrib.admin.models import LogEntry

    from providers_app.services.client_keys import (
        ClientKeyRefused,
        client_key_authenticate,
        client_key_create,
    )

    created = client_key_create(name="bot")
    response = staff_client.post(
        reverse("admin:providers_app_clientkey_changelist"),
        {"action": "revoke", "_selected_action": [created.client_key.pk]},
    )

    assert response.status_code == 302
    with pytest.raises(ClientKeyRefused):
        client_key_authenticate(raw_key=created.raw_key)
    assert LogEntry.objects.filter(change_message="Revoked.").count() == 1


def test_operator_buttons_show_only_to_users_who_may_operate(client, django_user_model, db):
    from django.contrib.auth.models import Permission

    from tests.factories import provider_create

    provider = provider_create()
    url = reverse("admin:providers_app_provider_change", args=[provider.pk])
    operate_url = reverse(
        "admin:providers_app_provider_operate", args=[provider.pk, "health_check"]
    )
    editor = django_user_model.objects.create_user("editor", password="pw", is_staff=True)
    editor.user_permissions.add(Permission.objects.get(codename="change_provider"))
    client.force_login(editor)
    assert operate_url not in client.get(url).content.decode()

    editor.user_permissions.add(Permission.objects.get(codename="operate_provider"))
    editor = django_user_model.objects.get(pk=editor.pk)  # fresh permission cache
    client.force_login(editor)
    assert operate_url in client.get(url).content.decode()


def test_capabilities_default_from_kind_and_model_and_can_be_overridden(staff_client, db):
    response = staff_client.post(
        reverse("admin:providers_app_provider_add"),
        data=provider_admin_form(
            kind="anthropic", model="claude-opus-4-6", api_key_env="ANTHROPIC_API_KEY"
        )
        | {"supports_images": "false"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    provider = Provider.objects.get(name="new-one")
    assert (provider.supports_tools, provider.supports_images) == (None, False)

    url = reverse("admin:providers_app_provider_change", args=[provider.pk])
    content = staff_client.get(url).content.decode()
    assert "Default for the kind and model" in content
    # Opus 4.6 refuses a trailing assistant message: prefill is off by default.
    assert "tools: yes (default)" in content
    assert "images: no (set here)" in content
    assert "prefill: no (default)" in content
