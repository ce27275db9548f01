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

import json
from collections.abc import Iterator
from typing import Any, ClassVar
from urllib.parse import quote

from .base import ChatRequest, Completion, Message, ProviderAdapter, StreamDelta
from .classify import content_filter_error, model_not_listed_error
from .continuation import NONE, openai_continuation
from .errors import Category, provider_error
from .normalise import OPENAI_FINISH_REASONS, dig
from .schema import ImagePart, ResponseFormat, Tool, ToolCall, ToolChoice
from .sse import SSEEvent
from .streaming import StreamDecoder
from .tool_ids import client_tool_id, outbound_id
from .transport import HttpCall, ResponseMeta
from .usage import openai_usage

# -- the OpenAI request shape, shared with the simulator and the API rendering ---


def openai_message(message: Message, *, id_profile: str = "openai") -> dict[str, Any]:
    """A message as OpenAI Chat Completions takes it; ids made valid for ``id_profile``."""
    out: dict[str, Any] = {"role": message.role}
    if isinstance(message.content, str):
        out["content"] = message.content
    else:
        out["content"] = [openai_part(part) for part in message.content]
    if message.tool_calls:
        if out["content"] == "":
            out["content"] = None
        out["tool_calls"] = [
            {
                "id": outbound_id(id_profile, call.id),
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in message.tool_calls
        ]
    if message.role == "tool":
        out["tool_call_id"] = outbound_id(id_profile, message.tool_call_id or "")
    return out


def openai_part(part: Any) -> dict[str, Any]:
    if isinstance(part, ImagePart):
        image: dict[str, Any] = {"url": part.url}
        if part.detail is not None:
            image["detail"] = part.detail
        return {"type": "image_url", "image_url": image}
    return {"type": "text", "text": part.text}


def openai_tool(tool: Tool) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool.name}
    if tool.description is not None:
        function["description"] = tool.description
    if tool.parameters is not None:
        function["parameters"] = tool.parameters
    if tool.strict is not None:
        function["strict"] = tool.strict
    return {"type": "function", "function": function}


def openai_tool_choice(choice: ToolChoice) -> Any:
    if choice.name is not None:
        return {"type": "function", "function": {"name": choice.name}}
    return choice.mode


def openai_response_format(form: ResponseFormat) -> dict[str, Any]:
    if form.type != "json_schema":
        return {"type": form.type}
    spec: dict[str, Any] = {"name": form.name or "response"}
    if form.description is not None:
        spec["description"] = form.description
    spec["schema"] = form.schema
    spec["strict"] = form.strict
    return {"type": "json_schema", "json_schema": spec}


def arguments_text(value: Any) -> str:
    """Tool arguments as JSON text: some servers (Mistral, Ollama) send an object."""
    if isinstance(value, str):
        return value
    return "" if value is None else json.dumps(value, ensure_ascii=False)


class OpenAIStreamDecoder(StreamDecoder):
    """``chat.completion.chunk`` events, then ``[DONE]``."""

    def __init__(self, **context: Any) -> None:
        super().__init__(**context)
        self.refused = False  # a streamed ``delta.refusal``: filtered, however it ends
        self._last_tool_key: Any = None

    def feed(self, item: SSEEvent) -> Iterator[StreamDelta]:
        if item.data.strip() == "[DONE]":
            self.done = True
            return
        chunk = self.load_event(item)
        if item.event == "error" or chunk.get("error"):
            raise self.in_band_error(chunk)
        usage = chunk.get("usage") or dig(chunk, "x_groq", "usage") or {}
        self.update(model=chunk.get("model"), **openai_usage(usage))
        self.response_id = self.response_id or chunk.get("id")
        choice = dig(chunk, "choices", 0)
        if not isinstance(choice, dict):
            return  # Azure's prompt_filter_results chunk, the usage-only chunk
        text = dig(choice, "delta", "content")
        if isinstance(text, str) and text:
            yield self.output(text)
        for entry in dig(choice, "delta", "tool_calls") or ():
            if isinstance(entry, dict):
                yield from self._tool_entry(entry)
        if dig(choice, "delta", "refusal"):
            self.refused = True
        finish = choice.get("finish_reason")
        if finish == "error":
            raise self.in_band_error(chunk)  # OpenRouter: failed after generation started
        if isinstance(finish, str) and finish:
            self.raw_finish_reason = finish

    def _tool_entry(self, entry: dict[str, Any]) -> Iterator[StreamDelta]:
        """Normalise one upstream ``delta.tool_calls`` entry (docs/clients.md §5): a missing
        index continues the last call (or starts one), a repeated id or name is dropped."""
        function = entry.get("function") or {}
        key = entry.get("index")
        if not isinstance(key, int) or isinstance(key, bool):
            starts = entry.get("id") is not None or self._last_tool_key is None
            key = ("position", len(self._tool_slots)) if starts else self._last_tool_key
        self._last_tool_key = key
        arguments = arguments_text(function.get("arguments"))
        if key not in self._tool_slots:
            yield self.tool_start(
                key, entry.get("id"), function.get("name") or "", arguments=arguments
            )
            return
        piece = self.tool_fragment(key, arguments)
        if piece is not None:
            yield piece

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
    # OpenAI and Azure have no continuation: a trailing assistant message is
    # history and the model starts a new answer, silently (docs/engine.md,
    # "Mid-stream rescue"). Such a request is refused here, never sent.
    continues_prefill: ClassVar[bool] = False

    def _auth_header(self) -> tuple[str, str] | None:
        key = self.config.api_key
        return ("Authorization", f"Bearer {key}") if key else None

    def _chat_call(self, request: ChatRequest, *, stream: bool) -> HttpCall:
        if request.continue_final and (
            not self.continues_prefill or self.config.continuation == NONE
        ):
            raise provider_error(
                Category.INVALID_REQUEST,
                f"{self.kind} cannot continue a partial answer (no assistant prefill)",
                provider=self.config.provider,
            )
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
            "messages": [openai_message(m) for m in request.messages],
        }
        optional = {
            self.max_tokens_field: request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "stop": list(request.stop) or None,
            "user": request.user,
            "tools": [openai_tool(tool) for tool in request.tools] or None,
            "tool_choice": openai_tool_choice(request.tool_choice) if request.tool_choice else None,
            "parallel_tool_calls": request.parallel_tool_calls,
            "response_format": (
                openai_response_format(request.response_format) if request.response_format else None
            ),
        }
        body.update({name: value for name, value in optional.items() if value is not None})
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        if request.continue_final:
            openai_continuation(body, self.config.continuation)
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
        calls = tuple(
            ToolCall(
                id=client_tool_id(self.kind, payload.get("id"), call.get("id"), position),
                name=dig(call, "function", "name") or "",
                arguments=arguments_text(dig(call, "function", "arguments")),
            )
            for position, call in enumerate(message.get("tool_calls") or ())
            if isinstance(call, dict)
        )
        return Completion(
            text=text,
            tool_calls=calls,
            raw_finish_reason=choice.get("finish_reason"),
            **openai_usage(usage),
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
    # Each server continues in its own dialect (adapters/continuation.py): the
    # provider's `continuation` decides the body (a plain trailing assistant
    # message, vLLM's flags, or Mistral/DeepSeek's `prefix: true`).
    continues_prefill = True
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
