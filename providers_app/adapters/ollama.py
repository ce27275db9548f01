"""The Ollama native ``/api/chat`` wire format (docs/vendors.md, "Wire formats").

``stream`` is sent explicitly (Ollama streams by default). Streams are NDJSON,
not SSE: one object per line, the last with ``done: true`` and the counts; a
mid-stream failure is a line ``{"error": "…"}`` under HTTP 200. Local servers
need no key; ``https://ollama.com`` takes a Bearer key. The probe lists
``/api/tags`` and checks that the model is pulled.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from .base import ChatRequest, Completion, Message, ProviderAdapter, StreamDelta
from .classify import model_not_listed_error
from .normalise import OLLAMA_FINISH_REASONS, dig
from .openai import arguments_text, openai_tool
from .schema import ToolCall
from .streaming import StreamDecoder
from .tool_ids import client_tool_id, outbound_id
from .transport import HttpCall, ResponseMeta
from .usage import ollama_usage


def ollama_message(message: Message) -> dict[str, Any]:
    """Text in ``content``, images as bare base64 in ``images``, arguments as objects."""
    out: dict[str, Any] = {"role": message.role, "content": message.text}
    images = [image.inline[1] for image in message.images if image.inline]
    if images:
        out["images"] = images
    if message.tool_calls:
        out["tool_calls"] = [
            {
                "id": outbound_id("ollama", call.id),
                "function": {"name": call.name, "arguments": json.loads(call.arguments or "{}")},
            }
            for call in message.tool_calls
        ]
    if message.role == "tool":
        out["tool_name"] = message.name or ""
        out["tool_call_id"] = outbound_id("ollama", message.tool_call_id or "")
    return out


def ollama_format(request: ChatRequest) -> Any:
    form = request.response_format
    if form is None:
        return None
    return dict(form.schema) if form.type == "json_schema" and form.schema else "json"


def ollama_calls(message: Any) -> list[dict[str, Any]]:
    return [c for c in dig(message, "tool_calls") or () if isinstance(c, dict)]


class OllamaStreamDecoder(StreamDecoder):
    framing = "ndjson"

    def feed(self, item: Any) -> Iterator[StreamDelta]:
        if not isinstance(item, dict):
            raise self.undecodable("stream line is not a JSON object")
        if item.get("error"):
            raise self.in_band_error(item)
        self.update(model=item.get("model"))
        # No response id: the first line's timestamp keeps the minted tool ids stable.
        self.response_id = self.response_id or item.get("created_at")
        text = dig(item, "message", "content")
        if isinstance(text, str) and text:
            yield self.output(text)
        for call in ollama_calls(item.get("message")):
            yield self.tool_start(
                ("call", len(self._tool_slots)),
                call.get("id"),
                dig(call, "function", "name") or "",
                arguments=arguments_text(dig(call, "function", "arguments")) or "{}",
            )
        if item.get("done") is True:
            self.raw_finish_reason = item.get("done_reason") or "stop"
            self.update(**ollama_usage(item))
            self.done = True


class OllamaAdapter(ProviderAdapter):
    kind = "ollama"
    requires_api_key = False
    finish_reasons = OLLAMA_FINISH_REASONS
    stream_decoder_class = OllamaStreamDecoder

    def _url(self, path: str) -> str:
        return self.config.base_url.rstrip("/").removesuffix("/api") + path

    def _auth_header(self) -> tuple[str, str] | None:
        key = self.config.api_key
        return ("Authorization", f"Bearer {key}") if key else None

    def _chat_call(self, request: ChatRequest, *, stream: bool) -> HttpCall:
        options = {
            "num_predict": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "stop": list(request.stop) or None,
        }
        body: dict[str, Any] = {
            "model": self.config.model,
            "messages": [ollama_message(m) for m in request.messages],
            "stream": stream,
        }
        # No tool_choice field: "none" is honoured by not offering the tools;
        # "required" and named choices are refused before routing (capabilities).
        if request.tools and not (request.tool_choice and request.tool_choice.mode == "none"):
            body["tools"] = [openai_tool(tool) for tool in request.tools]
        form = ollama_format(request)
        if form is not None:
            body["format"] = form
        options = {name: value for name, value in options.items() if value is not None}
        if options:
            body["options"] = options
        return self._call("POST", "/api/chat", json_body=body)

    def _parse_completion(self, payload: Any, meta: ResponseMeta) -> Completion:
        text = dig(payload, "message", "content")
        if not isinstance(text, str):
            raise self._malformed("chat response without message.content", meta)
        calls = tuple(
            ToolCall(
                id=client_tool_id(self.kind, payload.get("created_at"), call.get("id"), position),
                name=dig(call, "function", "name") or "",
                arguments=arguments_text(dig(call, "function", "arguments")) or "{}",
            )
            for position, call in enumerate(ollama_calls(payload.get("message")))
        )
        return Completion(
            text=text,
            tool_calls=calls,
            raw_finish_reason=payload.get("done_reason") or ("stop" if payload.get("done") else ""),
            **ollama_usage(payload),
            model=payload.get("model"),
        )

    def _probe_call(self) -> HttpCall:
        return self._call("GET", "/api/tags")

    def _check_probe(self, payload: Any, meta: ResponseMeta) -> None:
        """Check the model is installed; "loadable" only shows on inference (GPU OOM)."""
        names = {
            name
            for entry in dig(payload, "models") or ()
            for name in (dig(entry, "name"), dig(entry, "model"))
            if isinstance(name, str)
        }
        wanted = self.config.model
        if wanted not in names and f"{wanted}:latest" not in names:
            raise model_not_listed_error(self.config.provider, wanted)
