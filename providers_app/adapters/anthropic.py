"""The Anthropic Messages wire format (docs/vendors.md, "Wire formats").

``POST {base_url}/v1/messages`` with ``x-api-key`` and ``anthropic-version:
2023-06-01``. ``max_tokens`` is required (1024 when the caller sets none) and
system messages go to the top-level ``system`` field. Streams are SSE with named
events (``message_start`` … ``message_stop``, ``ping``, ``error``); unknown
events are ignored because the docs promise new ones. ``stop_reason: refusal``
is a content-filter outcome.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar
from urllib.parse import quote

from .base import ChatRequest, Completion, ProviderAdapter, StreamDelta
from .normalise import ANTHROPIC_FINISH_REASONS, dig, token_count
from .sse import SSEEvent
from .streaming import StreamDecoder
from .transport import HttpCall, ResponseMeta

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 1024


class AnthropicStreamDecoder(StreamDecoder):
    """Named events; ``message_stop`` terminates, ``event: error`` is classified by its type."""

    def feed(self, item: SSEEvent) -> Iterator[StreamDelta]:
        payload = self.load_event(item)
        kind = item.event if item.event != "message" else payload.get("type")
        if kind == "error":
            raise self.in_band_error(payload)
        if kind == "message_start":
            usage = dig(payload, "message", "usage") or {}
            self.update(
                model=dig(payload, "message", "model"),
                input_tokens=usage.get("input_tokens"),
                output_tokens=usage.get("output_tokens"),
            )
        elif kind == "content_block_delta":
            delta = payload.get("delta") or {}
            if delta.get("type") == "text_delta" and delta.get("text"):
                yield self.output(delta["text"])
        elif kind == "message_delta":
            stop_reason = dig(payload, "delta", "stop_reason")
            if isinstance(stop_reason, str) and stop_reason:
                self.raw_finish_reason = stop_reason
            # output_tokens here is cumulative: the latest value is the total.
            self.update(output_tokens=dig(payload, "usage", "output_tokens"))
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
            "messages": [{"role": m.role, "content": m.content} for m in request.conversation],
        }
        optional = {
            "system": request.system_prompt,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "stop_sequences": list(request.stop) or None,
            "metadata": {"user_id": request.user} if request.user else None,
            "stream": True if stream else None,
        }
        body.update({name: value for name, value in optional.items() if value is not None})
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
        usage = payload.get("usage") or {}
        return Completion(
            text=text,
            raw_finish_reason=payload.get("stop_reason"),
            input_tokens=token_count(usage.get("input_tokens")),
            output_tokens=token_count(usage.get("output_tokens")),
            model=payload.get("model"),
            request_id=payload.get("id"),
        )

    def _probe_call(self) -> HttpCall:
        # Free; checks the key, the version header and that the model id exists.
        return self._call(
            "GET", f"/v1/models/{quote(self.config.model, safe='')}", headers=self.version_headers
        )
