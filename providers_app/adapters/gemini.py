"""The Google Gemini ``generateContent`` wire format, API-key variant (docs/vendors.md).

``POST {base_url}/v1beta/models/{model}:generateContent`` and
``:streamGenerateContent?alt=sse``, key in ``x-goog-api-key`` (never ``?key=``,
which leaks into URL logs). Roles are ``user``/``model``; system messages become
``systemInstruction``. A 200 with ``promptFeedback.blockReason`` and no candidates
is a blocked prompt; SAFETY-like finish reasons are filtered answers. Streams have
no terminator: a final ``finishReason`` ends them, and an error may arrive as a
``data:`` chunk or as bare (multi-line) JSON.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

from .base import ChatRequest, Completion, Message, ProviderAdapter, StreamDelta
from .capabilities import GEMINI_3
from .classify import content_filter_error
from .json_schemas import gemini_schema
from .normalise import GEMINI_FINISH_REASONS, dig
from .schema import ImagePart, ToolCall
from .sse import SSEEvent
from .streaming import StreamDecoder
from .tool_ids import client_tool_id, outbound_id
from .transport import HttpCall, ResponseMeta
from .usage import gemini_usage

_ROLES = {"user": "user", "assistant": "model"}
_MODES = {"none": "NONE", "auto": "AUTO", "required": "ANY"}
# Google's documented value for calls that did not come from Gemini (another
# vendor answered that turn): Gemini 3 refuses a current-turn call without one.
SKIP_SIGNATURE = "skip_thought_signature_validator"


def is_gemini_3(model: str) -> bool:
    """Gemini 3 models fill call ids and want thought signatures back; 2.x do neither."""
    return bool(GEMINI_3.match(model.lower()))


def gemini_contents(conversation: tuple[Message, ...], model: str) -> list[dict[str, Any]]:
    """OpenAI turns as Gemini contents: results of one turn in one user content, in
    call order (older models pair them by name and order), objects as responses."""
    with_ids = is_gemini_3(model)
    out: list[dict[str, Any]] = []
    for message in conversation:
        if message.role == "tool":
            response: dict[str, Any] = {"name": message.name or "", "response": _response(message)}
            if with_ids:
                response = {"id": outbound_id("gemini", message.tool_call_id or ""), **response}
            part = {"functionResponse": response}
            if out and out[-1].get("_results"):
                out[-1]["parts"].append(part)
            else:
                out.append({"role": "user", "parts": [part], "_results": True})
            continue
        parts = [_part(p) for p in message.parts]
        for position, call in enumerate(message.tool_calls):
            args = json.loads(call.arguments or "{}")
            function: dict[str, Any] = {"name": call.name, "args": args}
            if with_ids:
                function = {"id": outbound_id("gemini", call.id), **function}
            part = {"functionCall": function}
            signature = call.thought_signature or (
                SKIP_SIGNATURE if with_ids and position == 0 else None
            )
            if signature:
                part["thoughtSignature"] = signature
            parts.append(part)
        out.append({"role": _ROLES.get(message.role, "user"), "parts": parts})
    for content in out:
        content.pop("_results", None)
    return out


def _response(message: Message) -> dict[str, Any]:
    """``response`` must be an object: the result (parsed when it is JSON) under ``output``."""
    try:
        return {"output": json.loads(message.text)}
    except ValueError:
        return {"output": message.text}


def _part(part: Any) -> dict[str, Any]:
    if isinstance(part, ImagePart):
        inline = part.inline
        if inline:
            return {"inlineData": {"mimeType": inline[0], "data": inline[1]}}
        return {"fileData": {"mimeType": part.media_type_guess, "fileUri": part.url}}
    return {"text": part.text}


def gemini_tool_fields(request: ChatRequest) -> dict[str, Any]:
    if not request.tools:
        return {}
    declarations = []
    for tool in request.tools:
        declaration: dict[str, Any] = {"name": tool.name}
        if tool.description is not None:
            declaration["description"] = tool.description
        if tool.parameters is not None:
            declaration["parametersJsonSchema"] = gemini_schema(tool.parameters)
        declarations.append(declaration)
    fields: dict[str, Any] = {"tools": [{"functionDeclarations": declarations}]}
    choice = request.tool_choice
    if choice is not None:
        config: dict[str, Any] = {"mode": _MODES[choice.mode]}
        if choice.name is not None:
            config["allowedFunctionNames"] = [choice.name]
        fields["toolConfig"] = {"functionCallingConfig": config}
    return fields


def gemini_calls(response: Any) -> list[tuple[dict[str, Any], str | None]]:
    """The first candidate's function calls with their thought signatures."""
    parts = dig(response, "candidates", 0, "content", "parts") or ()
    return [
        (part["functionCall"], part.get("thoughtSignature"))
        for part in parts
        if isinstance(part, dict) and isinstance(part.get("functionCall"), dict)
    ]


def candidate_text(response: Any) -> str:
    """The visible text of the first candidate; thought parts are skipped."""
    parts = dig(response, "candidates", 0, "content", "parts") or ()
    return "".join(
        part["text"]
        for part in parts
        if isinstance(part, dict) and isinstance(part.get("text"), str) and not part.get("thought")
    )


def block_reason(response: Any) -> str | None:
    reason = dig(response, "promptFeedback", "blockReason")
    return reason if isinstance(reason, str) and reason else None


class GeminiStreamDecoder(StreamDecoder):
    """Each event is a whole ``GenerateContentResponse`` holding a fragment."""

    accept_bare_json = True

    def feed(self, item: SSEEvent) -> Iterator[StreamDelta]:
        payload = self.load_json(item.data, terminated=item.terminated)
        responses = payload if isinstance(payload, list) else [payload]
        for response in responses:
            yield from self._feed_response(response)

    def _feed_response(self, response: Any) -> Iterator[StreamDelta]:
        if not isinstance(response, dict):
            raise self.undecodable("stream chunk is not a JSON object")
        if response.get("error"):
            raise self.in_band_error(response)
        reason = block_reason(response)
        if reason:
            raise content_filter_error(self.provider, reason, request_id=self.request_id)
        usage = response.get("usageMetadata") or {}
        self.update(model=response.get("modelVersion"), **gemini_usage(usage))
        self.request_id = self.request_id or response.get("responseId")
        self.response_id = self.response_id or response.get("responseId")
        text = candidate_text(response)
        if text:
            yield self.output(text)
        # Whole calls per event, no index: one complete delta per call.
        for call, signature in gemini_calls(response):
            yield self.tool_start(
                ("call", len(self._tool_slots)),
                call.get("id"),
                call.get("name", ""),
                arguments=json.dumps(call.get("args") or {}, ensure_ascii=False),
                thought_signature=signature,
            )
        finish = dig(response, "candidates", 0, "finishReason")
        if isinstance(finish, str) and finish:
            self.raw_finish_reason = finish


class GeminiAdapter(ProviderAdapter):
    kind = "gemini"
    finish_reasons = GEMINI_FINISH_REASONS
    stream_decoder_class = GeminiStreamDecoder

    def _url(self, path: str) -> str:
        return self.config.base_url.rstrip("/").removesuffix("/v1beta") + path

    @property
    def _model_path(self) -> str:
        model = self.config.model.removeprefix("models/")
        return f"/v1beta/models/{quote(model, safe='')}"

    def _auth_header(self) -> tuple[str, str] | None:
        key = self.config.api_key
        return ("x-goog-api-key", key) if key else None

    def _chat_call(self, request: ChatRequest, *, stream: bool) -> HttpCall:
        contents = gemini_contents(request.conversation, self.config.model)
        body: dict[str, Any] = {"contents": contents}
        if request.system_prompt is not None:
            body["systemInstruction"] = {"parts": [{"text": request.system_prompt}]}
        body.update(gemini_tool_fields(request))
        form = request.response_format
        generation = {
            "maxOutputTokens": request.max_tokens,
            "temperature": request.temperature,
            "topP": request.top_p,
            "stopSequences": list(request.stop) or None,
            "responseMimeType": "application/json" if form else None,
            "responseJsonSchema": (
                gemini_schema(form.schema) if form and form.schema is not None else None
            ),
        }
        generation = {name: value for name, value in generation.items() if value is not None}
        if generation:
            body["generationConfig"] = generation
        if stream:
            return self._call(
                "POST",
                f"{self._model_path}:streamGenerateContent",
                json_body=body,
                params={"alt": "sse"},
            )
        return self._call("POST", f"{self._model_path}:generateContent", json_body=body)

    def _parse_completion(self, payload: Any, meta: ResponseMeta) -> Completion:
        reason = block_reason(payload)
        if reason:
            raise content_filter_error(self.config.provider, reason, request_id=meta.request_id)
        candidate = dig(payload, "candidates", 0)
        if not isinstance(candidate, dict):
            raise self._malformed("response without candidates or blockReason", meta)
        usage = payload.get("usageMetadata") or {}
        calls = tuple(
            ToolCall(
                id=client_tool_id(self.kind, payload.get("responseId"), call.get("id"), position),
                name=call.get("name", ""),
                arguments=json.dumps(call.get("args") or {}, ensure_ascii=False),
                thought_signature=signature,
            )
            for position, (call, signature) in enumerate(gemini_calls(payload))
        )
        return Completion(
            text=candidate_text(payload),
            tool_calls=calls,
            raw_finish_reason=candidate.get("finishReason"),
            **gemini_usage(usage),
            model=payload.get("modelVersion"),
            request_id=payload.get("responseId"),
        )

    def _probe_call(self) -> HttpCall:
        # Free; a bad key answers 400 API_KEY_INVALID, an unknown model 404.
        return self._call("GET", self._model_path)
