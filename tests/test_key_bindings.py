"""Finding 5: a key variable reaches only the hosts it is bound to.

The vendors' own variables are bound to their hosts; any other variable is sent
nowhere until FALLBACK_KEY_HOSTS names its hosts. Every test here runs with the
production default (FALLBACK_KEY_HOSTS empty), through the admin form, `providers
import`, the chat API and `check --deploy`.
"""

import json

import pytest
from django.core.checks import run_checks
from django.urls import reverse

from providers_app.models import Provider
from tests.factories import provider_admin_form, provider_create

ATTACKER = "https://collector.attacker.example/v1"
# Accepted as key variables by name (they look like keys), but bound to no host.
SERVER_TOKENS = [
    "VAULT_TOKEN",
    "GH_TOKEN",
    "HF_TOKEN",
    "DD_API_KEY",
    "AZURE_STORAGE_KEY",
    "NPM_TOKEN",
    "SLACK_BOT_TOKEN",
    "STRIPE_API_KEY",
    "SENDGRID_API_KEY",
    "CLOUDFLARE_API_TOKEN",
]


@pytest.fixture(autouse=True)
def production_bindings(settings):
    settings.FALLBACK_KEY_HOSTS = []


def _add(admin_client, **fields):
    return admin_client.post(
        reverse("admin:providers_app_provider_add"), provider_admin_form(**fields)
    )


def _refusal(response) -> str:
    assert response.status_code == 200, "the form was accepted"
    errors = response.context["adminform"].form.errors
    return " ".join(errors.get("api_key_env", []))


@pytest.mark.parametrize("name", SERVER_TOKENS)
def test_the_admin_form_refuses_to_send_a_server_token_anywhere(admin_client, name):
    response = _add(admin_client, kind="openai_compatible", api_key_env=name, base_url=ATTACKER)

    assert f"{name} is bound to no host" in _refusal(response)
    assert not Provider.objects.filter(name="new-one").exists()


def test_an_openai_provider_with_a_foreign_base_url_does_not_get_openai_api_key(admin_client):
    response = _add(admin_client, kind="openai", api_key_env="OPENAI_API_KEY", base_url=ATTACKER)

    message = _refusal(response)
    assert "OPENAI_API_KEY may be sent only to api.openai.com" in message
    assert "collector.attacker.example" in message
    assert _add(admin_client, base_url="https://api.openai.com/v1").status_code == 302


def test_each_vendor_variable_reaches_its_own_hosts(db):
    for kind, name, url, extra in [
        ("anthropic", "ANTHROPIC_API_KEY", "https://api.anthropic.com", {}),
        ("gemini", "GEMINI_API_KEY", "https://generativelanguage.googleapis.com", {}),
        (
            "azure_openai",
            "AZURE_OPENAI_API_KEY",
            "https://team.openai.azure.com/openai/v1",
            {},
        ),
    ]:
        provider_create(kind=kind, api_key_env=name, base_url=url, extra=extra, model="m")


def test_a_binding_named_in_settings_opens_exactly_those_hosts(admin_client, settings):
    settings.FALLBACK_KEY_HOSTS = ["HF_TOKEN=router.huggingface.co|*.hf.space"]
    hf = {"kind": "openai_compatible", "api_key_env": "HF_TOKEN"}

    assert _add(admin_client, base_url="https://router.huggingface.co/v1", **hf).status_code == 302
    refused = _add(admin_client, name="other", base_url=ATTACKER, **hf)
    assert "HF_TOKEN may be sent only to router.huggingface.co, *.hf.space" in _refusal(refused)


def test_providers_import_refuses_an_unbound_variable(db, tmp_path):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    path = tmp_path / "providers.json"
    row = {
        "name": "exfil",
        "kind": "openai_compatible",
        "base_url": ATTACKER,
        "model": "m",
        "api_key_env": "VAULT_TOKEN",
    }
    path.write_text(json.dumps({"providers": [row]}))
    with pytest.raises(CommandError):
        call_command("providers", "import", str(path))
    assert not Provider.objects.filter(name="exfil").exists()


def test_a_stored_row_sending_a_vendor_key_elsewhere_is_never_called(
    client, primary, monkeypatch, db
):
    """A row saved before the rule (or by a bulk update): the chat API refuses to
    call it, so the simulator (standing in for the foreign host) never sees the key."""
    from providers_app.services.client_keys import client_key_create
    from providers_app.testing import process_state_reset

    monkeypatch.setenv("OPENAI_API_KEY", "sk-the-real-openai-key")
    provider = provider_create(kind="openai_compatible", base_url=primary.base_url, model="m")
    Provider.objects.filter(pk=provider.pk).update(kind="openai", api_key_env="OPENAI_API_KEY")
    process_state_reset()
    key = client_key_create(name="caller").raw_key

    response = client.post(
        "/v1/chat/completions",
        json.dumps({"model": "fallback", "messages": [{"role": "user", "content": "hi"}]}),
        content_type="application/json",
        headers={"Authorization": f"Bearer {key}"},
    )

    assert response.status_code == 503
    assert primary.last_request is None  # the key's value was sent nowhere


def test_check_deploy_warns_when_a_binding_is_open(db, settings):
    assert "providers_app.W011" not in [m.id for m in run_checks(include_deployment_checks=True)]
    settings.FALLBACK_KEY_HOSTS = ["VLLM_API_KEY=*"]
    warnings = [
        m for m in run_checks(include_deployment_checks=True) if m.id == "providers_app.W011"
    ]
    assert len(warnings) == 1
    assert "VLLM_API_KEY" in warnings[0].msg
