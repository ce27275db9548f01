"""Fixtures for the adapter suite: adapters per kind, recorded cases, a real local server.

Nothing here imports Django: the suite runs with ``-p no:django``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from providers_app.adapters import AdapterConfig, ProviderAdapter, adapter_for

from .fault_server import FaultServer

# Where each kind's recorded cases pretend to come from.
BASE_URLS = {
    "openai": "https://api.openai.com/v1",
    "azure_openai": "https://example-resource.openai.azure.com",
    "anthropic": "https://api.anthropic.com",
    "gemini": "https://generativelanguage.googleapis.com",
    "ollama": "http://localhost:11434",
    "openai_compatible": "https://api.groq.com/openai/v1",
    "simulated": "http://127.0.0.1:8101/v1",
}
MODELS = {
    "openai": "gpt-4o-mini",
    "azure_openai": "chat-gpt4o",
    "anthropic": "claude-sonnet-4-5",
    "gemini": "gemini-2.0-flash",
    "ollama": "llama3.2",
    "openai_compatible": "llama-3.3-70b-versatile",
    "simulated": "simulated-model",
}
# Shaped like a real key so that both the exact-value and the key-shape scrubbing run.
TEST_API_KEY = "sk-test-Zq81vN3pLk02RtYx55uWbCdE"

MakeAdapter = Callable[..., ProviderAdapter]


@pytest.fixture
def make_adapter() -> Iterator[MakeAdapter]:
    """Build adapters for a kind; every one built is closed after the test."""
    built: list[ProviderAdapter] = []

    def build(kind: str, *, base_url: str | None = None, **config: object) -> ProviderAdapter:
        settings: dict[str, object] = {
            "provider": f"test-{kind}",
            "base_url": base_url or BASE_URLS[kind],
            "model": MODELS[kind],
            "api_key": TEST_API_KEY,
        }
        settings.update(config)
        adapter = adapter_for(kind, AdapterConfig(**settings))  # type: ignore[arg-type]
        built.append(adapter)
        return adapter

    yield build
    for adapter in built:
        adapter.close()


@pytest.fixture
def fault_server() -> Iterator[FaultServer]:
    """A real HTTP server on 127.0.0.1 (ephemeral port) whose behaviour each test scripts."""
    server = FaultServer()
    server.start()
    yield server
    server.stop()
