"""Findings 9 and 10: a provider name cannot break answers, CRLF cannot reach a
header, and a key echoed in an encoded form is scrubbed before it is stored."""

import json
import re
from urllib.parse import quote, quote_plus

import pytest
from django.urls import reverse

from providers_app.models import BreakerState, FailoverEvent, Provider
from tests.factories import provider_admin_form, provider_create

URL = "/v1/chat/completions"
HELLO = [{"role": "user", "content": "Say hello."}]


def _chat(client, auth, **extra):
    body = {"model": "fallback", "messages": HELLO, **extra}
    return client.post(URL, json.dumps(body), content_type="application/json", headers=auth)


@pytest.fixture
def admin(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", password="pw"))
    return client


# -- finding 9: control characters in a provider's name ------------------------------


@pytest.mark.parametrize("name", ["evil\nX-Injected: 1", "tab\there", "nul\x00", "ls\u2028x"])
def test_the_admin_form_refuses_a_provider_name_with_control_characters(admin, name):
    response = admin.post(
        reverse("admin:providers_app_provider_add"), provider_admin_form(name=name)
    )

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "characters are not allowed" in " ".join(errors["name"])
    assert not Provider.objects.exists()


def test_providers_import_refuses_a_name_with_a_newline(db, tmp_path):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    row = {
        "name": "two\nlines",
        "kind": "ollama",
        "base_url": "http://127.0.0.1:11434",
        "model": "m",
    }
    path = tmp_path / "providers.json"
    path.write_text(json.dumps({"providers": [row]}))
    with pytest.raises(CommandError):
        call_command("providers", "import", str(path))
    assert not Provider.objects.exists()


@pytest.mark.parametrize("stream", [False, True])
def test_a_stored_name_with_a_newline_still_answers(client, auth, providers, stream):
    """A row saved before the rule: the answer (already paid for) still reaches the client."""
    Provider.objects.filter(pk=providers[0].pk).update(name="primary\r\nX-Injected: yes")

    response = _chat(client, auth, stream=stream)

    assert response.status_code == 200
    assert response["X-Fallback-Provider"] == "primary??X-Injected: yes"
    assert not response.has_header("X-Injected")
    if stream:
        assert b"[DONE]" in b"".join(response.streaming_content)


# -- finding 10: CRLF in extra.headers, encoded keys in stored errors ---------------------


def test_the_admin_form_refuses_crlf_in_an_extra_header_value(admin):
    extra = {"headers": {"OpenAI-Project": "proj\r\nX-Injected: 1"}}
    response = admin.post(
        reverse("admin:providers_app_provider_add"), provider_admin_form(extra=json.dumps(extra))
    )

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "control characters" in " ".join(errors["extra"])
    assert not Provider.objects.exists()


KEY = "local-Secret/Value+42==xyz"


@pytest.mark.parametrize(
    "echo",
    [
        quote(KEY, safe=""),
        re.sub("%[0-9A-F]{2}", lambda m: m.group(0).lower(), quote(KEY, safe="")),
        quote_plus(KEY),
    ],
)
def test_a_key_echoed_url_encoded_is_scrubbed_from_events_and_last_error(
    client, auth, primary, secondary, monkeypatch, echo
):
    monkeypatch.setenv("FB_TEST_ECHO_KEY", KEY)
    first = provider_create(
        name="echoing", base_url=primary.base_url, max_attempts=1,
        api_key_env="FB_TEST_ECHO_KEY",
    )  # fmt: skip
    provider_create(name="backup", base_url=secondary.base_url, max_attempts=1)
    primary.set_fault("error", status=500, message=f"upstream rejected key={echo} at /v1")

    assert _chat(client, auth).status_code == 200

    stored = json.dumps(
        [
            list(FailoverEvent.objects.values("detail")),
            BreakerState.objects.get(provider=first).last_error,
        ]
    )
    assert "[REDACTED]" in stored
    assert echo not in stored
    assert "Secret" not in stored
