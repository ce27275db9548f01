"""The Ollama native ``/api/chat`` wire format (docs/vendors.md, "Wire formats").

``stream`` is sent explicitly (Ollama streams by default). Streams are NDJSON,
not SSE: one object per line, the last with ``done: true`` and the counts; a
mid-stream failure is a line ``{"error": "…"}`` under HTTP 200. Local servers
need no key; ``https://ollama.com`` takes a Bearer key. The probe lists
``/api/tags`` and checks that the model is pulled.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .base import ChatRequest, Completion, ProviderAdapter, StreamDelta
from .classify import model_not_listed_error
from .normalise import OLLAMA_FINISH_REASONS, dig, token_count
from .streaming import StreamDecoder
from .transport import HttpCall, ResponseMeta


class OllamaStreamDecoder(StreamDecoder):
    framing = "ndjson"

    def feed(self, item: Any) -> Iterator[StreamDelta]:
        if not isinstance(item, dict):
            raise self.undecodable("stream line is not a JSON object")
        if item.get("error"):
            raise self.in_band_error(item)
        self.update(model=item.get("model"))
        text = dig(item, "message", "content")
        if isinstance(text, str) and text:
            yield self.output(text)
        if item.get("done") is True:
            self.raw_finish_reason = item.get("done_reason") or "stop"
            self.update(
                input_tokens=item.get("prompt_eval_count"), output_tokens=item.get("eval_count")
            )
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
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "stream": stream,
        }
        options = {name: value for name, value in options.items() if value is not None}
        if options:
            body["options"] = options
        return self._call("POST", "/api/chat", json_body=body)

    def _parse_completion(self, payload: Any, meta: ResponseMeta) -> Completion:
        text = dig(payload, "message", "content")
        if not isinstance(text, str):
            raise self._malformed("chat response without message.content", meta)
        return Completion(
            text=text,
            raw_finish_reason=payload.get("done_reason") or ("stop" if payload.get("done") else ""),
            input_tokens=token_count(payload.get("prompt_eval_count")),
            output_tokens=token_count(payload.get("eval_count")),
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
