"""Provider adapters: one per vendor wire format, pure ``requests`` + stdlib, no Django.

``adapter_for(kind, config)`` builds the adapter for a ``Provider.kind``. Every
failure leaves an adapter as a classified ``ProviderError`` (see ``errors``).
"""

from __future__ import annotations

import requests

from .anthropic import AnthropicAdapter
from .base import (
    AdapterConfig,
    ChatRequest,
    ChatResult,
    Message,
    ProviderAdapter,
    StreamDelta,
)
from .errors import (
    POLICY,
    Category,
    CategoryPolicy,
    ProviderAuthError,
    ProviderBadRequestError,
    ProviderBadResponseError,
    ProviderContentFilterError,
    ProviderContextLengthError,
    ProviderError,
    ProviderQuotaError,
    ProviderRateLimitError,
    ProviderServerError,
    ProviderTimeoutError,
    ProviderTransportError,
)
from .gemini import GeminiAdapter
from .ollama import OllamaAdapter
from .openai import AzureOpenAIAdapter, OpenAIAdapter, OpenAICompatibleAdapter
from .simulated import SimulatedAdapter

ADAPTERS: dict[str, type[ProviderAdapter]] = {
    adapter.kind: adapter
    for adapter in (
        OpenAIAdapter,
        AzureOpenAIAdapter,
        AnthropicAdapter,
        GeminiAdapter,
        OllamaAdapter,
        OpenAICompatibleAdapter,
        SimulatedAdapter,
    )
}


def adapter_for(
    kind: str, config: AdapterConfig, *, session: requests.Session | None = None
) -> ProviderAdapter:
    """The adapter for ``kind`` (a ``Provider.kind`` value) with this configuration."""
    try:
        adapter_class = ADAPTERS[kind]
    except KeyError:
        raise ValueError(f"unknown provider kind {kind!r}; known: {sorted(ADAPTERS)}") from None
    return adapter_class(config, session=session)


__all__ = [
    "ADAPTERS",
    "POLICY",
    "AdapterConfig",
    "AnthropicAdapter",
    "AzureOpenAIAdapter",
    "Category",
    "CategoryPolicy",
    "ChatRequest",
    "ChatResult",
    "GeminiAdapter",
    "Message",
    "OllamaAdapter",
    "OpenAIAdapter",
    "OpenAICompatibleAdapter",
    "ProviderAdapter",
    "ProviderAuthError",
    "ProviderBadRequestError",
    "ProviderBadResponseError",
    "ProviderContentFilterError",
    "ProviderContextLengthError",
    "ProviderError",
    "ProviderQuotaError",
    "ProviderRateLimitError",
    "ProviderServerError",
    "ProviderTimeoutError",
    "ProviderTransportError",
    "SimulatedAdapter",
    "StreamDelta",
    "adapter_for",
]
