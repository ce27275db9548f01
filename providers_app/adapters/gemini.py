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

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

from .base import ChatRequest, Completion, ProviderAdapter, StreamDelta
from .classify import content_filter_error
from .normalise import GEMINI_FINISH_REASONS, dig, token_count
from .sse import SSEEvent
from .streaming import StreamDecoder
from .transport import HttpCall, ResponseMeta

_ROLES = {"user": "user", "assistant": "model"}


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
        self.update(
            model=response.get("modelVersion"),
            input_tokens=usage.get("promptTokenCount"),
            output_tokens=usage.get("candidatesTokenCount"),
        )
        self.request_id = self.request_id or response.get("responseId")
        text = candidate_text(response)
        if text:
            yield self.output(text)
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
        body: dict[str, Any] = {
            "contents": [
                {"role": _ROLES.get(m.role, "user"), "parts": [{"text": m.content}]}
                for m in request.conversation
            ],
        }
        if request.system_prompt is not None:
            body["systemInstruction"] = {"parts": [{"text": request.system_prompt}]}
        generation = {
            "maxOutputTokens": request.max_tokens,
            "temperature": request.temperature,
            "topP": request.top_p,
            "stopSequences": list(request.stop) or None,
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
        return Completion(
            text=candidate_text(payload),
            raw_finish_reason=candidate.get("finishReason"),
            input_tokens=token_count(usage.get("promptTokenCount")),
            output_tokens=token_count(usage.get("candidatesTokenCount")),
            model=payload.get("modelVersion"),
            request_id=payload.get("responseId"),
        )

    def _probe_call(self) -> HttpCall:
        # Free; a bad key answers 400 API_KEY_INVALID, an unknown model 404.
        return self._call("GET", self._model_path)
