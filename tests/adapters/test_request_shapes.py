"""What each adapter puts on the wire: URL, headers, body, timeouts, probes, registry."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import responses

from providers_app.adapters import (
    ADAPTERS,
    AdapterConfig,
    ChatRequest,
    Message,
    ProviderError,
    adapter_for,
)
from providers_app.adapters.transport import USER_AGENT

from .conftest import TEST_API_KEY

REPO_ROOT = Path(__file__).resolve().parents[2]
REQUEST = ChatRequest(
    messages=(
        Message("system", "Be brief."),
        Message("user", "Capital of Peru?"),
        Message("assistant", "Lima."),
        Message("user", "And of Chile?"),
    ),
    max_tokens=64,
    temperature=0.2,
    top_p=0.9,
    stop=("\n\n",),
    user="user-42",
)
OPENAI_OK = {"model": "m", "choices": [{"message": {"content": "ok"}, "finish_reason": "stop"}]}


def _sent(adapter, reply=OPENAI_OK, *, method=responses.POST, call=None):
    """Run ``call`` (default: complete) against a mock; return the request that went out."""
    with responses.RequestsMock() as mock:
        mock.add(method, re.compile(r"https?://.*"), json=reply)
        (call or (lambda: adapter.complete(REQUEST, timeout=7.0)))()
        return mock.calls[0].request


def _body(request) -> dict:
    return json.loads(request.body)


def test_registry_holds_every_provider_kind() -> None:
    assert set(ADAPTERS) == {
        "openai",
        "azure_openai",
        "anthropic",
        "gemini",
        "ollama",
        "openai_compatible",
        "simulated",
    }
    assert all(cls.kind == kind for kind, cls in ADAPTERS.items())
    with pytest.raises(ValueError, match="unknown provider kind"):
        adapter_for("nope", AdapterConfig(provider="p", base_url="http://x", model="m"))


def test_adapters_import_no_django() -> None:
    code = (
        "import sys, providers_app.adapters\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'django')\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=True)


def test_session_never_retries_and_sends_the_user_agent(make_adapter) -> None:
    adapter = make_adapter("openai")
    for prefix in ("http://", "https://"):
        retries = adapter.session.get_adapter(prefix + "example.com").max_retries
        assert retries.total == 0
    sent = _sent(adapter)
    assert sent.headers["User-Agent"] == USER_AGENT == "django-llm-fallback/0.1"


def test_every_call_has_an_explicit_connect_and_read_timeout(make_adapter) -> None:
    adapter = make_adapter("openai", connect_timeout_s=2.5)
    timeout = _sent(adapter).req_kwargs["timeout"]
    connect, read = timeout
    assert connect == 2.5
    assert 6.0 < read <= 7.0
    short = _sent(adapter, call=lambda: adapter.complete(REQUEST, timeout=1.0)).req_kwargs
    assert short["timeout"][0] <= 1.0  # never more than the whole attempt


def test_openai_request(make_adapter) -> None:
    adapter = make_adapter("openai")
    sent = _sent(adapter)
    assert sent.url == "https://api.openai.com/v1/chat/completions"
    assert sent.headers["Authorization"] == f"Bearer {TEST_API_KEY}"
    assert _body(sent) == {
        "model": "gpt-4o-mini",
        "messages": [{"role": m.role, "content": m.content} for m in REQUEST.messages],
        "max_completion_tokens": 64,
        "temperature": 0.2,
        "top_p": 0.9,
        "stop": ["\n\n"],
        "user": "user-42",
    }


def test_openai_stream_asks_for_usage(make_adapter) -> None:
    adapter = make_adapter("openai")
    with responses.RequestsMock() as mock:
        mock.add(
            responses.POST,
            re.compile(".*"),
            body=(
                'data: {"choices":[{"delta":{"content":"x"},"finish_reason":"stop"}]}\n\n'
                "data: [DONE]\n\n"
            ),
            content_type="text/event-stream",
        )
        list(adapter.stream(REQUEST, timeout=5, first_token_timeout=5, idle_timeout=5))
        sent = mock.calls[0].request
    body = _body(sent)
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert sent.req_kwargs["stream"] is True


def test_openai_compatible_needs_no_key_and_sends_max_tokens(make_adapter) -> None:
    adapter = make_adapter("openai_compatible", api_key=None)
    sent = _sent(adapter)
    assert "Authorization" not in sent.headers
    assert _body(sent)["max_tokens"] == 64


def test_azure_classic_surface(make_adapter) -> None:
    adapter = make_adapter("azure_openai")
    sent = _sent(adapter)
    assert sent.url == (
        "https://example-resource.openai.azure.com/openai/deployments/chat-gpt4o/chat/completions"
        "?api-version=2024-10-21"
    )
    assert sent.headers["api-key"] == TEST_API_KEY
    assert "Authorization" not in sent.headers
    assert "model" not in _body(sent)


def test_azure_api_version_comes_from_config_params(make_adapter) -> None:
    adapter = make_adapter("azure_openai", params={"api-version": "2025-01-01-preview"})
    assert _sent(adapter).url.endswith("?api-version=2025-01-01-preview")


def test_azure_v1_surface(make_adapter) -> None:
    adapter = make_adapter(
        "azure_openai", base_url="https://example-resource.openai.azure.com/openai/v1/"
    )
    sent = _sent(adapter)
    assert sent.url == "https://example-resource.openai.azure.com/openai/v1/chat/completions"
    assert _body(sent)["model"] == "chat-gpt4o"


def test_anthropic_request(make_adapter) -> None:
    adapter = make_adapter("anthropic", base_url="https://api.anthropic.com/v1")
    reply = {"model": "c", "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn"}
    sent = _sent(adapter, reply)
    assert sent.url == "https://api.anthropic.com/v1/messages"  # no doubled /v1
    assert sent.headers["x-api-key"] == TEST_API_KEY
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert _body(sent) == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 64,
        "system": "Be brief.",
        "messages": [
            {"role": "user", "content": "Capital of Peru?"},
            {"role": "assistant", "content": "Lima."},
            {"role": "user", "content": "And of Chile?"},
        ],
        "temperature": 0.2,
        "top_p": 0.9,
        "stop_sequences": ["\n\n"],
        "metadata": {"user_id": "user-42"},
    }


def test_anthropic_max_tokens_defaults_to_1024(make_adapter) -> None:
    adapter = make_adapter("anthropic")
    reply = {"model": "c", "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn"}
    with responses.RequestsMock() as mock:
        mock.add(responses.POST, re.compile(".*"), json=reply)
        adapter.complete(ChatRequest(messages=(Message("user", "hi"),)), timeout=5)
        assert _body(mock.calls[0].request)["max_tokens"] == 1024


def test_gemini_request(make_adapter) -> None:
    adapter = make_adapter("gemini")
    reply = {"candidates": [{"content": {"parts": [{"text": "ok"}]}, "finishReason": "STOP"}]}
    sent = _sent(adapter, reply)
    assert sent.url == (
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.0-flash:generateContent"
    )
    assert sent.headers["x-goog-api-key"] == TEST_API_KEY
    assert _body(sent) == {
        "contents": [
            {"role": "user", "parts": [{"text": "Capital of Peru?"}]},
            {"role": "model", "parts": [{"text": "Lima."}]},
            {"role": "user", "parts": [{"text": "And of Chile?"}]},
        ],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "generationConfig": {
            "maxOutputTokens": 64,
            "temperature": 0.2,
            "topP": 0.9,
            "stopSequences": ["\n\n"],
        },
    }


def test_gemini_stream_uses_sse(make_adapter) -> None:
    adapter = make_adapter("gemini", model="models/gemini-2.0-flash")
    body = (
        'data: {"candidates":[{"content":{"parts":[{"text":"ok"}]},"finishReason":"STOP"}]}\r\n\r\n'
    )
    with responses.RequestsMock() as mock:
        mock.add(responses.POST, re.compile(".*"), body=body, content_type="text/event-stream")
        list(adapter.stream(REQUEST, timeout=5, first_token_timeout=5, idle_timeout=5))
        url = mock.calls[0].request.url
    assert url.endswith("/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse")


def test_ollama_request(make_adapter) -> None:
    adapter = make_adapter("ollama", api_key=None)
    reply = {"model": "llama3.2", "message": {"content": "ok"}, "done": True, "done_reason": "stop"}
    sent = _sent(adapter, reply)
    assert sent.url == "http://localhost:11434/api/chat"
    assert "Authorization" not in sent.headers
    body = _body(sent)
    assert body["stream"] is False
    assert body["options"] == {
        "num_predict": 64,
        "temperature": 0.2,
        "top_p": 0.9,
        "stop": ["\n\n"],
    }
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}


def test_simulated_speaks_openai_without_a_key(make_adapter) -> None:
    adapter = make_adapter("simulated", api_key=None)
    sent = _sent(adapter)
    assert sent.url == "http://127.0.0.1:8101/v1/chat/completions"
    assert "Authorization" not in sent.headers


def test_extra_headers_and_params_from_the_config_are_sent(make_adapter) -> None:
    adapter = make_adapter("openai", headers={"OpenAI-Project": "proj_1"}, params={"trace": "on"})
    sent = _sent(adapter)
    assert sent.headers["OpenAI-Project"] == "proj_1"
    assert sent.url.endswith("/chat/completions?trace=on")


@pytest.mark.parametrize(
    ("kind", "extra", "method", "url", "reply"),
    [
        (
            "openai",
            {},
            "GET",
            "https://api.openai.com/v1/models/gpt-4o-mini",
            {"id": "gpt-4o-mini"},
        ),
        (
            "openai_compatible",
            {},
            "GET",
            "https://api.groq.com/openai/v1/models",
            {"data": [{"id": "llama-3.3-70b-versatile"}]},
        ),
        (
            "anthropic",
            {},
            "GET",
            "https://api.anthropic.com/v1/models/claude-sonnet-4-5",
            {"id": "claude-sonnet-4-5"},
        ),
        (
            "gemini",
            {},
            "GET",
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.0-flash",
            {"name": "models/gemini-2.0-flash"},
        ),
        (
            "ollama",
            {},
            "GET",
            "http://localhost:11434/api/tags",
            {"models": [{"name": "llama3.2:latest"}]},
        ),
        (
            "azure_openai",
            {"base_url": "https://r.openai.azure.com/openai/v1"},
            "GET",
            "https://r.openai.azure.com/openai/v1/models",
            {"data": []},
        ),
        (
            "azure_openai",
            {},
            "POST",
            "https://example-resource.openai.azure.com/openai/deployments/chat-gpt4o/chat/completions?api-version=2024-10-21",
            OPENAI_OK,
        ),
        ("simulated", {}, "GET", "http://127.0.0.1:8101/v1/models/simulated-model", {"id": "x"}),
    ],
)
def test_probe_makes_the_cheapest_proving_call(
    make_adapter, kind, extra, method, url, reply
) -> None:
    adapter = make_adapter(kind, **extra)
    sent = _sent(adapter, reply, method=method, call=lambda: adapter.probe(timeout=5))
    assert (sent.method, sent.url) == (method, url)
    if kind == "azure_openai" and method == "POST":
        assert _body(sent)["max_completion_tokens"] == 1


@pytest.mark.parametrize(
    ("kind", "reply"),
    [
        ("ollama", {"models": [{"name": "qwen2.5:7b"}]}),
        ("openai_compatible", {"data": [{"id": "some-other-model"}]}),
    ],
)
def test_probe_fails_when_the_model_is_not_served(make_adapter, kind, reply) -> None:
    adapter = make_adapter(kind)
    with pytest.raises(ProviderError) as caught:
        _sent(adapter, reply, method=responses.GET, call=lambda: adapter.probe(timeout=5))
    assert caught.value.category == "not_found"


def test_probe_failures_are_classified(make_adapter) -> None:
    adapter = make_adapter("openai")
    with responses.RequestsMock() as mock:
        mock.add(
            responses.GET,
            re.compile(".*"),
            status=401,
            json={"error": {"message": "Incorrect API key", "code": "invalid_api_key"}},
        )
        with pytest.raises(ProviderError) as caught:
            adapter.probe(timeout=5)
    assert caught.value.category == "auth"


def test_close_closes_only_an_owned_session(make_adapter) -> None:
    import requests

    shared = requests.Session()
    config = AdapterConfig(provider="p", base_url="http://x", model="m")
    borrowed = adapter_for("simulated", config, session=shared)
    assert borrowed.session is shared
    borrowed.close()
    assert shared.adapters  # untouched: still usable by its owner
    shared.close()
