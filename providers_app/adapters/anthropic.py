"""The Anthropic Messages wire format (docs/vendors.md, "Wire formats").

``POST {base_url}/v1/messages`` with ``x-api-key`` and ``anthropic-version:
2023-06-01``. ``max_tokens`` is required (1024 when the caller sets none) and
system messages go to the top-level ``system`` field. Streams are SSE with named
events (``message_start`` … ``message_stop``, ``ping``, ``error``); unknown
events are ignored because the docs promise new ones. ``stop_reason: refusal``
is a content-filter outcome.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, ClassVar
from urllib.parse import quote

from .base import ChatRequest, Completion, Message, ProviderAdapter, StreamDelta
from .json_schemas import anthropic_schema
from .normalise import ANTHROPIC_FINISH_REASONS, dig
from .schema import ImagePart, ToolCall
from .sse import SSEEvent
from .streaming import StreamDecoder
from .tool_ids import client_tool_id, outbound_id
from .transport import HttpCall, ResponseMeta
from .usage import anthropic_usage

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 1024
# Anthropic has no JSON mode; json_object is asked for in the system prompt and
# the answer is checked locally (fit.py), failing over when it is not JSON.
JSON_OBJECT_INSTRUCTION = "Respond with one JSON object and nothing else."
# History with tool blocks needs `tools` even when the client offers none now.
_STUB_SCHEMA = {"type": "object", "additionalProperties": True}
_TOOL_CHOICES = {"none": "none", "auto": "auto", "required": "any"}


def anthropic_messages(conversation: tuple[Message, ...]) -> list[dict[str, Any]]:
    """OpenAI turns as Anthropic turns: tool results become ``tool_result`` blocks that
    open the next user message (all results of one assistant turn in that one message)."""
    out: list[dict[str, Any]] = []
    for message in conversation:
        if message.role == "tool":
            block = {
                "type": "tool_result",
                "tool_use_id": outbound_id("anthropic", message.tool_call_id or ""),
                "content": message.text,
            }
            if out and out[-1]["role"] == "user" and _is_results(out[-1]):
                out[-1]["content"].append(block)
            else:
                out.append({"role": "user", "content": [block]})
            continue
        if message.role == "user" and out and out[-1]["role"] == "user" and _is_results(out[-1]):
            out[-1]["content"].extend(_blocks(message))  # text after the results
            continue
        if message.role == "assistant" and message.tool_calls:
            blocks = [{"type": "text", "text": message.text}] if message.text else []
            blocks += [
                {
                    "type": "tool_use",
                    "id": outbound_id("anthropic", call.id),
                    "name": call.name,
                    "input": json.loads(call.arguments or "{}"),
                }
                for call in message.tool_calls
            ]
            out.append({"role": "assistant", "content": blocks})
            continue
        content = message.content if isinstance(message.content, str) else _blocks(message)
        out.append({"role": message.role, "content": content})
    return out


def _strip_prefill(messages: list[dict[str, Any]]) -> None:
    """Anthropic refuses a final assistant text ending in whitespace (400 "final
    assistant content cannot end with trailing whitespace"): strip it. The model
    then usually writes that whitespace first; the engine drops it once
    (fallback.ChatStream) so the client does not see it twice."""
    last = messages[-1] if messages else None
    if last and last["role"] == "assistant" and isinstance(last["content"], str):
        last["content"] = last["content"].rstrip()


def _is_results(message: dict[str, Any]) -> bool:
    content = message["content"]
    return isinstance(content, list) and any(b.get("type") == "tool_result" for b in content)


def _blocks(message: Message) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for part in message.parts:
        if isinstance(part, ImagePart):
            blocks.append({"type": "image", "source": _image_source(part)})
        else:
            blocks.append({"type": "text", "text": part.text})
    return blocks


def _image_source(part: ImagePart) -> dict[str, Any]:
    inline = part.inline
    if inline:
        return {"type": "base64", "media_type": inline[0], "data": inline[1]}
    return {"type": "url", "url": part.url}


def anthropic_tools_fields(request: ChatRequest) -> dict[str, Any]:
    """``tools`` and ``tool_choice`` for a request (stubs when only history has tools)."""
    fields: dict[str, Any] = {}
    if request.tools:
        tools = []
        for tool in request.tools:
            schema = dict(tool.parameters or {"type": "object", "properties": {}})
            entry: dict[str, Any] = {"name": tool.name}
            if tool.description is not None:
                entry["description"] = tool.description
            entry["input_schema"] = anthropic_schema(schema) if tool.strict else schema
            if tool.strict:
                entry["strict"] = True
            tools.append(entry)
        fields["tools"] = tools
    elif request.uses_tools:
        names = dict.fromkeys(
            call.name for message in request.messages for call in message.tool_calls
        )
        fields["tools"] = [{"name": name, "input_schema": _STUB_SCHEMA} for name in names]
        fields["tool_choice"] = {"type": "none"}
        return fields
    choice = request.tool_choice
    if choice is not None:
        if choice.name is not None:
            fields["tool_choice"] = {"type": "tool", "name": choice.name}
        else:
            fields["tool_choice"] = {"type": _TOOL_CHOICES[choice.mode]}
    if request.parallel_tool_calls is False and request.tools:
        tool_choice = fields.setdefault("tool_choice", {"type": "auto"})
        if tool_choice["type"] != "none":
            tool_choice["disable_parallel_tool_use"] = True
    return fields


class AnthropicStreamDecoder(StreamDecoder):
    """Named events; ``message_stop`` terminates, ``event: error`` is classified by its type."""

    def feed(self, item: SSEEvent) -> Iterator[StreamDelta]:
        payload = self.load_event(item)
        kind = item.event if item.event != "message" else payload.get("type")
        if kind == "error":
            raise self.in_band_error(payload)
        if kind == "message_start":
            self.response_id = dig(payload, "message", "id")
            usage = dig(payload, "message", "usage") or {}
            self.update(model=dig(payload, "message", "model"), **anthropic_usage(usage))
        elif kind == "content_block_start":
            block = payload.get("content_block") or {}
            if block.get("type") == "tool_use":
                # `input: {}` here is a placeholder: the arguments come as fragments.
                yield self.tool_start(payload.get("index"), block.get("id"), block.get("name", ""))
        elif kind == "content_block_delta":
            delta = payload.get("delta") or {}
            if delta.get("type") == "text_delta" and delta.get("text"):
                yield self.output(delta["text"])
            elif delta.get("type") == "input_json_delta":
                piece = self.tool_fragment(payload.get("index"), delta.get("partial_json") or "")
                if piece is not None:
                    yield piece
        elif kind == "content_block_stop":
            piece = self.tool_stop(payload.get("index"))
            if piece is not None:
                yield piece
        elif kind == "message_delta":
            stop_reason = dig(payload, "delta", "stop_reason")
            if isinstance(stop_reason, str) and stop_reason:
                self.raw_finish_reason = stop_reason
            # output_tokens here is cumulative: the latest value is the total.
            # (Newer API versions repeat the input counts here; older ones do not.)
            self.update(**anthropic_usage(payload.get("usage")))
        elif kind == "message_stop":
            self.done = True
        # ping, content_block_start/stop and event types added later: nothing to do.


class AnthropicAdapter(ProviderAdapter):
    kind = "anthropic"
    finish_reasons = ANTHROPIC_FINISH_REASONS
    stream_decoder_class = AnthropicStreamDecoder
    version_headers: ClassVar[dict[str, str]] = {"anthropic-version": API_VERSION}

    def _url(self, path: str) -> str:
        # Accept a base_url given with or without the /v1 the paths already carry.
        return self.config.base_url.rstrip("/").removesuffix("/v1") + path

    def _auth_header(self) -> tuple[str, str] | None:
        key = self.config.api_key
        return ("x-api-key", key) if key else None

    def _chat_call(self, request: ChatRequest, *, stream: bool) -> HttpCall:
        body: dict[str, Any] = {
            "model": self.config.model,
            "max_tokens": request.max_tokens or DEFAULT_MAX_TOKENS,
            "messages": anthropic_messages(request.conversation),
        }
        if request.continue_final:
            _strip_prefill(body["messages"])
        system = request.system_prompt
        form = request.response_format
        if form is not None and form.type == "json_object":
            system = f"{system}\n\n{JSON_OBJECT_INSTRUCTION}" if system else JSON_OBJECT_INSTRUCTION
        optional = {
            "system": system,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "stop_sequences": list(request.stop) or None,
            "metadata": {"user_id": request.user} if request.user else None,
            "stream": True if stream else None,
        }
        body.update({name: value for name, value in optional.items() if value is not None})
        body.update(anthropic_tools_fields(request))
        if form is not None and form.type == "json_schema" and form.schema is not None:
            body["output_config"] = {
                "format": {"type": "json_schema", "schema": anthropic_schema(form.schema)}
            }
        return self._call("POST", "/v1/messages", json_body=body, headers=self.version_headers)

    def _parse_completion(self, payload: Any, meta: ResponseMeta) -> Completion:
        blocks = payload.get("content")
        if not isinstance(blocks, list):
            raise self._malformed("message without content blocks", meta)
        text = "".join(
            block.get("text", "")
            for block in blocks
            if isinstance(block, dict) and block.get("type") == "text"
        )
        uses = [b for b in blocks if isinstance(b, dict) and b.get("type") == "tool_use"]
        calls = tuple(
            ToolCall(
                id=client_tool_id(self.kind, payload.get("id"), block.get("id"), position),
                name=block.get("name", ""),
                arguments=json.dumps(block.get("input") or {}, ensure_ascii=False),
            )
            for position, block in enumerate(uses)
        )
        usage = payload.get("usage") or {}
        return Completion(
            text=text,
            tool_calls=calls,
            raw_finish_reason=payload.get("stop_reason"),
            **anthropic_usage(usage),
            model=payload.get("model"),
            request_id=payload.get("id"),
        )

    def _probe_call(self) -> HttpCall:
        # Free; checks the key, the version header and that the model id exists.
        return self._call(
            "GET", f"/v1/models/{quote(self.config.model, safe='')}", headers=self.version_headers
        )
