"""The OpenAI Chat Completions wire format: OpenAI, Azure OpenAI, OpenAI-compatible servers.

- OpenAI: ``POST {base_url}/chat/completions`` (base_url includes ``/v1``), Bearer key.
- Azure classic: ``{endpoint}/openai/deployments/{deployment}/chat/completions
  ?api-version=…`` with an ``api-key`` header; the deployment is the config's
  ``model``. A base_url ending in ``/openai/v1`` selects Azure's v1 surface:
  OpenAI paths, ``model`` in the body, no api-version.
- OpenAI-compatible (vLLM, Groq, Together, Mistral, DeepSeek, OpenRouter): OpenAI
  paths, key optional, the classic ``max_tokens`` field most of them read.

Streams are SSE ending in ``data: [DONE]``. Quirks handled: Azure's first chunk
with ``choices: []``, the usage-only chunk, Groq's ``x_groq.usage``, error
objects mid-stream and OpenRouter's ``finish_reason: "error"``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar
from urllib.parse import quote

from .base import ChatRequest, Completion, Message, ProviderAdapter, StreamDelta
from .classify import content_filter_error, model_not_listed_error
from .normalise import OPENAI_FINISH_REASONS, dig, token_count
from .sse import SSEEvent
from .streaming import StreamDecoder
from .transport import HttpCall, ResponseMeta


class OpenAIStreamDecoder(StreamDecoder):
    """``chat.completion.chunk`` events, then ``[DONE]``."""

    def __init__(self, **context: Any) -> None:
        super().__init__(**context)
        self.refused = False  # a streamed ``delta.refusal``: filtered, however it ends

    def feed(self, item: SSEEvent) -> Iterator[StreamDelta]:
        if item.data.strip() == "[DONE]":
            self.done = True
            return
        chunk = self.load_event(item)
        if item.event == "error" or chunk.get("error"):
            raise self.in_band_error(chunk)
        usage = chunk.get("usage") or dig(chunk, "x_groq", "usage") or {}
        self.update(
            model=chunk.get("model"),
            input_tokens=dig(usage, "prompt_tokens"),
            output_tokens=dig(usage, "completion_tokens"),
        )
        choice = dig(chunk, "choices", 0)
        if not isinstance(choice, dict):
            return  # Azure's prompt_filter_results chunk, the usage-only chunk
        text = dig(choice, "delta", "content")
        if isinstance(text, str) and text:
            yield self.output(text)
        if dig(choice, "delta", "refusal"):
            self.refused = True
        finish = choice.get("finish_reason")
        if finish == "error":
            raise self.in_band_error(chunk)  # OpenRouter: failed after generation started
        if isinstance(finish, str) and finish:
            self.raw_finish_reason = finish

    def final(self) -> StreamDelta:
        if self.refused:
            raise content_filter_error(self.provider, "refusal", request_id=self.request_id)
        return super().final()


class OpenAIAdapter(ProviderAdapter):
    kind = "openai"
    finish_reasons = OPENAI_FINISH_REASONS
    stream_decoder_class = OpenAIStreamDecoder
    # The current name; the older max_tokens is rejected by reasoning models.
    max_tokens_field: ClassVar[str] = "max_completion_tokens"
    chat_path: ClassVar[str] = "/chat/completions"

    def _auth_header(self) -> tuple[str, str] | None:
        key = self.config.api_key
        return ("Authorization", f"Bearer {key}") if key else None

    def _chat_call(self, request: ChatRequest, *, stream: bool) -> HttpCall:
        return self._call(
            "POST",
            self._chat_path(),
            json_body=self._chat_body(request, stream=stream),
            params=self._chat_params(),
        )

    def _chat_path(self) -> str:
        return self.chat_path

    def _chat_params(self) -> dict[str, str]:
        return {}

    def _chat_body(self, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.config.model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        }
        optional = {
            self.max_tokens_field: request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "stop": list(request.stop) or None,
            "user": request.user,
        }
        body.update({name: value for name, value in optional.items() if value is not None})
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    def _parse_completion(self, payload: Any, meta: ResponseMeta) -> Completion:
        choice = dig(payload, "choices", 0)
        if not isinstance(choice, dict):
            raise self._malformed("completion without choices", meta)
        message = choice.get("message") or {}
        text = message.get("content") or ""
        if message.get("refusal") and not text:
            raise content_filter_error(self.config.provider, "refusal", request_id=meta.request_id)
        usage = payload.get("usage") or {}
        return Completion(
            text=text,
            raw_finish_reason=choice.get("finish_reason"),
            input_tokens=token_count(usage.get("prompt_tokens")),
            output_tokens=token_count(usage.get("completion_tokens")),
            model=payload.get("model") or None,
            request_id=payload.get("id"),
        )

    def _probe_call(self) -> HttpCall:
        # Proves key, organisation and access to this very model (docs/vendors.md).
        return self._call("GET", f"/models/{quote(self.config.model, safe='')}")


class OpenAICompatibleAdapter(OpenAIAdapter):
    """vLLM, Groq, Together, Mistral, DeepSeek, OpenRouter, Ollama's /v1, …"""

    kind = "openai_compatible"
    requires_api_key = False
    max_tokens_field = "max_tokens"  # what every compatible server reads

    def _probe_call(self) -> HttpCall:
        return self._call("GET", "/models")

    def _check_probe(self, payload: Any, meta: ResponseMeta) -> None:
        """Where the server lists models, the configured one must be among them."""
        listed = [dig(item, "id") for item in dig(payload, "data") or () if isinstance(item, dict)]
        if listed and self.config.model not in listed:
            raise model_not_listed_error(self.config.provider, self.config.model)


class AzureOpenAIAdapter(OpenAIAdapter):
    kind = "azure_openai"
    default_api_version: ClassVar[str] = "2024-10-21"

    @property
    def uses_v1_surface(self) -> bool:
        return self.config.base_url.rstrip("/").endswith("/openai/v1")

    def _auth_header(self) -> tuple[str, str] | None:
        key = self.config.api_key
        return ("api-key", key) if key else None

    def _chat_path(self) -> str:
        if self.uses_v1_surface:
            return self.chat_path
        return f"/openai/deployments/{quote(self.config.model, safe='')}/chat/completions"

    def _chat_params(self) -> dict[str, str]:
        # Without api-version the classic surface answers 404 "Resource not found".
        return {} if self.uses_v1_surface else {"api-version": self.default_api_version}

    def _chat_body(self, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        body = super()._chat_body(request, stream=stream)
        if not self.uses_v1_surface:
            body.pop("model")  # the deployment in the path picks the model
        return body

    def _probe_call(self) -> HttpCall:
        if self.uses_v1_surface:
            return self._call("GET", "/models")
        # The classic surface has no key-scoped way to list deployments; a one-token
        # completion is the call that proves key, endpoint and deployment.
        tiny = ChatRequest(messages=(Message(role="user", content="ping"),), max_tokens=1)
        return self._chat_call(tiny, stream=False)
