"""A stale provider form: saving a page opened before another change is refused."""

import re

import pytest
from django.urls import reverse

from providers_app.admin_forms import STALE_FORM_MESSAGE
from providers_app.models import Provider


@pytest.fixture
def staff_client(client, django_user_model):
    user = django_user_model.objects.create_superuser("ops", "ops@example.com", "pw")
    client.force_login(user)
    return client


def _open_page(client, provider) -> dict[str, str]:
    """The form as a browser tab holds it: every value, and the version it was rendered from."""
    url = reverse("admin:providers_app_provider_change", args=[provider.pk])
    content = client.get(url).content.decode()
    version = re.search(r'name="version" value="([^"]*)"', content)
    return {
        "name": provider.name,
        "kind": provider.kind,
        "base_url": provider.base_url,
        "model": provider.model,
        "api_key_env": provider.api_key_env,
        "enabled": "on" if provider.enabled else "",
        "timeout_s": str(provider.timeout_s),
        "max_attempts": str(provider.max_attempts),
        "extra": "{}",
        "version": version.group(1) if version else "",
    }


def _save(client, provider, data):
    url = reverse("admin:providers_app_provider_change", args=[provider.pk])
    return client.post(url, data)


def test_a_stale_form_does_not_undo_a_disable_from_another_tab(staff_client, make_provider):
    provider = make_provider(name="primary")
    first_tab = _open_page(staff_client, provider)  # opened while enabled
    disable = reverse(
        "admin:providers_app_provider_operate", args=[provider.pk, "provider_disable"]
    )
    staff_client.post(disable)  # the second tab disables it
    assert not Provider.objects.get(pk=provider.pk).enabled

    response = _save(staff_client, provider, {**first_tab, "timeout_s": "7"})

    assert response.status_code == 200  # the form again, not a redirect
    assert STALE_FORM_MESSAGE in response.content.decode()
    saved = Provider.objects.get(pk=provider.pk)
    assert not saved.enabled
    assert saved.timeout_s == provider.timeout_s


def test_a_reloaded_form_saves(staff_client, make_provider):
    provider = make_provider(name="primary")
    disable = reverse(
        "admin:providers_app_provider_operate", args=[provider.pk, "provider_disable"]
    )
    staff_client.post(disable)
    fresh = _open_page(staff_client, Provider.objects.get(pk=provider.pk))

    response = _save(staff_client, provider, {**fresh, "timeout_s": "7"})

    assert response.status_code == 302, response.content.decode()[:3000]
    saved = Provider.objects.get(pk=provider.pk)
    assert saved.timeout_s == 7
    assert not saved.enabled


def test_a_form_saved_twice_from_the_same_page_is_refused_the_second_time(
    staff_client, make_provider
):
    provider = make_provider(name="primary")
    page = _open_page(staff_client, provider)
    assert _save(staff_client, provider, {**page, "timeout_s": "7"}).status_code == 302

    response = _save(staff_client, provider, {**page, "timeout_s": "9"})

    assert STALE_FORM_MESSAGE in response.content.decode()
    assert Provider.objects.get(pk=provider.pk).timeout_s == 7


def test_a_form_without_a_version_is_refused(staff_client, make_provider):
    provider = make_provider(name="primary")
    page = _open_page(staff_client, provider)
    del page["version"]

    response = _save(staff_client, provider, {**page, "timeout_s": "7"})

    assert STALE_FORM_MESSAGE in response.content.decode()
