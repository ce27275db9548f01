"""Continuation dialects around the request path: defaults by kind, base URL and
model; the refusal wordings; the switch a refusal makes (event, provider page,
switching back in the admin, a stale tab); `/api/status`; import and export."""

import re

import pytest
from django.urls import reverse

from providers_app.adapters.capabilities import default_continuation
from providers_app.adapters.continuation import DIALECTS, refuses_continuation
from providers_app.adapters.errors import Category, provider_error
from providers_app.admin_forms import STALE_FORM_MESSAGE
from providers_app.engine.continuation import STARTED_OVER_MESSAGE, continuation_refused
from providers_app.engine.routing import routing_snapshot
from providers_app.models import Continuation, FailoverEvent, Provider
from providers_app.selectors import route_entry_for
from providers_app.services.providers import provider_export, provider_import
from tests.factories import provider_admin_form, provider_create

ANTHROPIC = "https://api.anthropic.com"
GEMINI = "https://generativelanguage.googleapis.com"
GROQ = "https://api.groq.com/openai/v1"
OPENROUTER = "https://openrouter.ai/api/v1"


@pytest.mark.parametrize(
    ("kind", "base_url", "model", "dialect"),
    [
        ("openai", "https://api.openai.com/v1", "gpt-4o", "none"),
        ("azure_openai", "https://x.openai.azure.com", "gpt-4o", "none"),
        ("anthropic", ANTHROPIC, "claude-sonnet-4-5", "trailing_assistant"),
        ("anthropic", ANTHROPIC, "claude-opus-4-6", "none"),
        ("gemini", GEMINI, "gemini-2.5-flash", "trailing_assistant"),
        ("gemini", GEMINI, "gemini-3.6-flash", "none"),
        ("ollama", "http://ollama:11434", "llama3.2", "none"),
        ("openai_compatible", "https://api.mistral.ai/v1", "mistral-large-latest", "prefix"),
        ("openai_compatible", "https://api.deepseek.com/beta", "deepseek-chat", "prefix"),
        ("openai_compatible", "https://api.deepseek.com/v1", "deepseek-chat", "none"),
        ("openai_compatible", GROQ, "llama-3.3-70b", "trailing_assistant"),
        ("openai_compatible", OPENROUTER, "meta-llama/llama-3.3-70b", "trailing_assistant"),
        ("openai_compatible", OPENROUTER, "openai/gpt-4o", "none"),
        ("openai_compatible", OPENROUTER, "anthropic/claude-sonnet-4.6", "none"),
        ("openai_compatible", OPENROUTER, "anthropic/claude-3.7-sonnet", "trailing_assistant"),
        ("openai_compatible", OPENROUTER, "google/gemini-2.5-flash", "trailing_assistant"),
        # vLLM, llama.cpp or anything self-hosted: the URL cannot tell.
        ("openai_compatible", "http://10.0.0.5:8000/v1", "Qwen/Qwen2.5-7B-Instruct", "none"),
        ("simulated", "http://127.0.0.1:9/v1", "m", "trailing_assistant"),
    ],
)  # fmt: skip
def test_the_default_dialect_follows_kind_base_url_and_model(kind, base_url, model, dialect):
    assert default_continuation(kind, base_url, model) == dialect


def test_the_model_choices_are_the_adapters_dialects():
    assert tuple(Continuation.values) == DIALECTS


@pytest.mark.parametrize(
    "message",
    [
        "This model does not support assistant message prefill. The conversation must end "
        "with a user message.",
        "Requests ending with a model turn are not supported unless the last part is a "
        "function response.",
        "Expected last role User or Tool (or Assistant with prefix True) for serving but got "
        "assistant",
        "Cannot set both `continue_final_message` and `add_generation_prompt` to True.",
        "messages: final assistant content cannot end with trailing whitespace",
        STARTED_OVER_MESSAGE,
    ],
)
def test_refusal_wordings_are_recognised(message):
    assert refuses_continuation(message)


@pytest.mark.parametrize(
    "message",
    ["Invalid value for 'temperature'", "maximum context length is 8192 tokens", "Bad request"],
)
def test_other_400s_are_not_refusals(message):
    assert not refuses_continuation(message)


@pytest.fixture
def staff_client(client, django_user_model):
    user = django_user_model.objects.create_superuser("ops", "ops@example.com", "pw")
    client.force_login(user)
    return client


def _refuse(provider: Provider) -> bool:
    error = provider_error(
        Category.INVALID_REQUEST,
        "Expected last role User or Tool (or Assistant with prefix True) for serving but got "
        "assistant; key sk-live-abcdefghijklmnopqrstuvwxyz0123456789",
        provider=provider.name,
        status_code=400,
    )
    return continuation_refused(
        route_entry_for(provider.pk), error, request_id="req-1", route="fallback"
    )


def test_a_refusal_switches_the_dialect_off_once_with_a_sanitised_event(db):
    provider = provider_create(name="mistral", continuation="trailing_assistant")

    assert _refuse(provider) is True
    assert _refuse(provider) is False  # already off: one event

    provider.refresh_from_db()
    assert provider.continuation == "none"
    (event,) = FailoverEvent.objects.filter(kind=FailoverEvent.Kind.CONTINUATION_OFF)
    assert (event.provider_id, event.reason, event.status_code) == (
        provider.pk,
        "trailing_assistant",
        400,
    )
    assert "Expected last role User or Tool" in event.detail
    assert "sk-live-abcdefghijklmnop" not in event.detail  # secrets scrubbed
    # Routing sees it at once: the next continuation skips the provider.
    assert next(e for e in routing_snapshot() if e.name == "mistral").continuation == "none"


def test_a_provider_already_without_a_dialect_is_left_alone(db):
    provider = provider_create(name="plain")  # openai_compatible on 127.0.0.1: none
    assert _refuse(provider) is False
    assert not FailoverEvent.objects.exists()


def _change_page(client, provider) -> str:
    return client.get(
        reverse("admin:providers_app_provider_change", args=[provider.pk])
    ).content.decode()


def _form(provider, content: str, **changes) -> dict:
    version = re.search(r'name="version" value="([^"]*)"', content).group(1)
    return provider_admin_form(
        name=provider.name, kind=provider.kind, base_url=provider.base_url,
        model=provider.model, api_key_env="", version=version, **changes,
    )  # fmt: skip


def test_the_provider_page_shows_the_switch_and_an_admin_switches_it_back(staff_client):
    provider = provider_create(name="mistral", continuation="prefix")
    _refuse(provider)

    content = _change_page(staff_client, provider)
    assert "switched off automatically" in content
    assert "Expected last role User or Tool" in content

    url = reverse("admin:providers_app_provider_change", args=[provider.pk])
    response = staff_client.post(url, _form(provider, content, continuation="prefix"))

    assert response.status_code == 302, response.content.decode()[:2000]
    provider.refresh_from_db()
    assert provider.continuation == "prefix"
    assert "prefix (set here)" in _change_page(staff_client, provider)


def test_a_tab_opened_before_the_switch_cannot_undo_it(staff_client):
    provider = provider_create(name="mistral", continuation="prefix")
    stale = _change_page(staff_client, provider)
    _refuse(provider)

    url = reverse("admin:providers_app_provider_change", args=[provider.pk])
    response = staff_client.post(url, _form(provider, stale, continuation="prefix", timeout_s="9"))

    assert STALE_FORM_MESSAGE in response.content.decode()
    provider.refresh_from_db()
    assert provider.continuation == "none"


def test_a_kind_is_refused_a_dialect_its_wire_format_cannot_carry(staff_client):
    response = staff_client.post(
        reverse("admin:providers_app_provider_add"),
        provider_admin_form(
            kind="anthropic", model="claude-sonnet-4-5", api_key_env="ANTHROPIC_API_KEY",
            continuation="vllm",
        ),
    )  # fmt: skip
    assert response.status_code == 200
    assert "continues only as: none, trailing_assistant" in response.content.decode()
    assert not Provider.objects.filter(name="new-one").exists()


def test_status_shows_the_dialect_in_force(staff_client):
    provider_create(name="groq", base_url=GROQ)
    provider_create(name="vllm", continuation="vllm")

    groq, vllm = staff_client.get("/api/status").json()["providers"]

    assert groq["continuation"] == {"dialect": "trailing_assistant", "is_default": True}
    assert groq["capabilities"]["prefill"] is True
    assert vllm["continuation"] == {"dialect": "vllm", "is_default": False}


def test_the_dialect_travels_through_export_and_import(db):
    provider_create(name="vllm", continuation="vllm")
    entry = next(p for p in provider_export()["providers"] if p["name"] == "vllm")
    assert entry["continuation"] == "vllm"

    entry["continuation"] = "prefix"
    provider_import(data={"providers": [entry]})
    assert Provider.objects.get(name="vllm").continuation == "prefix"


def test_an_import_with_an_unknown_dialect_names_the_field(db):
    from providers_app.services.providers import ProviderImportError

    entry = {"name": "x", "kind": "openai_compatible", "base_url": "http://h/v1", "model": "m"}
    with pytest.raises(ProviderImportError) as raised:
        provider_import(data={"providers": [{**entry, "continuation": "telepathy"}]})
    assert any(p.field == "continuation" for p in raised.value.problems)


def test_a_file_exported_before_dialects_still_imports(db):
    base = {"kind": "openai_compatible", "base_url": "http://h/v1", "model": "m"}
    provider_import(
        data={
            "providers": [
                {**base, "name": "yes", "supports_prefill": True},
                {**base, "name": "no", "supports_prefill": False},
                {**base, "name": "empty", "supports_prefill": None},
            ]
        }
    )
    assert dict(Provider.objects.values_list("name", "continuation")) == {
        "yes": "trailing_assistant",
        "no": "none",
        "empty": "",
    }


def test_a_database_error_while_learning_is_logged_and_does_not_raise(db, monkeypatch, caplog):
    from django.db import DatabaseError

    from providers_app.engine import continuation

    class _Rows:
        def filter(self, **_):
            return self

        def exclude(self, **_):
            return self

        def update(self, **_):
            raise DatabaseError("database is locked")

    provider = provider_create(name="mistral", continuation="prefix")
    entry = route_entry_for(provider.pk)
    monkeypatch.setattr(continuation.Provider, "objects", _Rows())
    error = provider_error(Category.INVALID_REQUEST, "prefix refused", provider="mistral")

    assert continuation_refused(entry, error, request_id="r", route="fallback") is False
    assert "could not switch the continuation off" in caplog.text
    monkeypatch.undo()
    assert Provider.objects.get(pk=provider.pk).continuation == "prefix"
