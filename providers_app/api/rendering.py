"""OpenAI-shaped response bodies: chat.completion, chat.completion.chunk, model lists.

Shapes follow the OpenAI Chat Completions reference, so the official SDK builds
its typed objects from them unchanged. `model` is always the upstream model
that answered; which provider that was travels in the X-Fallback-* headers.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from ..adapters.schema import ToolCall, ToolCallDelta
from ..engine.capabilities import capabilities_in_force, continuation_in_force
from ..engine.fallback import ChatCompletion, ChatStream

# The engine's normalised finish reasons that OpenAI's vocabulary lacks.
_FINISH_REASONS = {"other": "stop"}


def finish_reason(value: str | None) -> str:
    value = value or "stop"
    return _FINISH_REASONS.get(value, value)


def completion_id(request_id: str) -> str:
    return f"chatcmpl-{request_id}"


def usage(input_tokens: int | None, output_tokens: int | None) -> dict[str, int] | None:
    """OpenAI usage, or None when the upstream did not report both counts
    (zeros would be a lie that billing code downstream believes)."""
    if input_tokens is None or output_tokens is None:
        return None
    return {
        "prompt_tokens": input_tokens,
        "completion_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
    }


def fallback_headers(outcome: ChatCompletion | ChatStream) -> dict[str, str]:
    """Who answered and how: a completion and a committed stream both know it."""
    return {
        "X-Fallback-Provider": outcome.provider,
        "X-Fallback-Route": outcome.route,
        "X-Fallback-Attempts": str(outcome.attempts),
        "X-Fallback-Failovers": str(outcome.failovers),
        "X-Request-Id": outcome.request_id,
    }


def finisher(stream: ChatStream) -> dict[str, Any]:
    """``x_fallback`` of a stream's last chunk (docs/clients.md, "Mid-stream rescue")."""
    return {"provider": stream.finished_by, "continued_from": list(stream.continued_from)}


def tool_call_body(call: ToolCall) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments},
    }
    if call.thought_signature:
        # Gemini's own OpenAI-compatible endpoint returns it in this vendor extension;
        # clients send it back unchanged, so a later turn can return it to Gemini.
        body["extra_content"] = {"google": {"thought_signature": call.thought_signature}}
    return body


def tool_call_delta_body(piece: ToolCallDelta) -> dict[str, Any]:
    """One `delta.tool_calls` entry: id, type and name only on a call's first piece."""
    body: dict[str, Any] = {"index": piece.index}
    if piece.id is not None:
        body["id"] = piece.id
        body["type"] = "function"
        body["function"] = {"name": piece.name or "", "arguments": piece.arguments}
    else:
        body["function"] = {"arguments": piece.arguments}
    if piece.thought_signature:
        body["extra_content"] = {"google": {"thought_signature": piece.thought_signature}}
    return body


def completion_message(result: ChatCompletion) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": result.text, "refusal": None}
    if result.tool_calls:
        message["content"] = result.text or None
        message["tool_calls"] = [tool_call_body(call) for call in result.tool_calls]
    return message


def completion_body(result: ChatCompletion) -> dict[str, Any]:
    return {
        "id": completion_id(result.request_id),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": result.model,
        "choices": [
            {
                "index": 0,
                "message": completion_message(result),
                "logprobs": None,
                "finish_reason": finish_reason(result.finish_reason),
            }
        ],
        "usage": usage(result.input_tokens, result.output_tokens),
        "system_fingerprint": None,
    }


class ChunkBuilder:
    """`chat.completion.chunk` objects of one stream (same id, created and model)."""

    def __init__(self, stream: ChatStream, *, include_usage: bool) -> None:
        self.id = completion_id(stream.request_id)
        self.model = stream.model
        self.created = int(time.time())
        self.include_usage = include_usage

    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        chunk: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": choices,
        }
        if self.include_usage:  # OpenAI sends usage: null on every chunk but the last
            chunk["usage"] = None
        chunk.update(extra)
        return chunk

    @staticmethod
    def _choice(delta: Mapping[str, Any], finish: str | None) -> dict[str, Any]:
        return {"index": 0, "delta": dict(delta), "logprobs": None, "finish_reason": finish}

    def role(self) -> dict[str, Any]:
        return self._chunk([self._choice({"role": "assistant", "content": ""}, None)])

    def content(self, text: str) -> dict[str, Any]:
        return self._chunk([self._choice({"content": text}, None)])

    def tool_call(self, piece: ToolCallDelta) -> dict[str, Any]:
        """One entry per chunk: the SDK's accumulator keeps two entries of one index apart."""
        return self._chunk([self._choice({"tool_calls": [tool_call_delta_body(piece)]}, None)])

    def finish(self, reason: str | None, stream: ChatStream) -> dict[str, Any]:
        """The last choice chunk; it names who finished the answer, because the
        headers (X-Fallback-Provider) were sent before a mid-stream rescue."""
        return self._chunk([self._choice({}, finish_reason(reason))], x_fallback=finisher(stream))

    def usage(
        self, input_tokens: int | None, output_tokens: int | None, stream: ChatStream
    ) -> dict[str, Any]:
        """The usage chunk, the very last one: it names the finisher too."""
        return self._chunk(
            [], usage=usage(input_tokens, output_tokens), x_fallback=finisher(stream)
        )


def model_list_body(routes: Iterable[Any]) -> dict[str, Any]:
    """The routes by name (`model` values a client may send), the default one marked.

    `owned_by` is "fallback"; `default` says which route serves names that match
    none, and `providers` lists the route's enabled providers in order.
    """
    return {
        "object": "list",
        "data": [
            {
                "id": route.name,
                "object": "model",
                "created": 0,
                "owned_by": "fallback",
                "default": route.is_default,
                "providers": [entry.name for entry in route.entries],
            }
            for route in routes
        ],
    }


def status_body(
    statuses: Iterable[Any], routes: Iterable[Any], *, now: datetime, window_s: int
) -> dict[str, Any]:
    """/api/status: the routes with their enabled providers in order (as /v1/models
    lists them: what the next request follows), and each provider with breaker,
    cooldown, recent calls and its place in each route (`routes`: name -> 1 first)."""

    def moment(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    def remaining(until: datetime | None) -> float | None:
        return round((until - now).total_seconds(), 1) if until and until > now else None

    return {
        "generated_at": now.isoformat(),
        "window_s": window_s,
        "routes": model_list_body(routes)["data"],
        "providers": [
            {
                "name": s.name,
                "kind": s.kind,
                "model": s.model,
                "enabled": s.enabled,
                "routes": s.routes,
                "breaker": {
                    "state": s.state,
                    "open_until": moment(s.open_until),
                    "consecutive_failures": s.consecutive_failures,
                },
                "cooldown": {
                    "active": remaining(s.cooldown_until) is not None,
                    "until": moment(s.cooldown_until),
                    "remaining_s": remaining(s.cooldown_until),
                },
                # In force: the operator's switch, else the kind and model's default.
                "capabilities": {
                    name: value
                    for name, value, _ in capabilities_in_force(
                        kind=s.kind,
                        model=s.model,
                        overrides=s.capability_overrides,
                        base_url=s.base_url,
                        continuation=s.continuation,
                    )
                },
                # The dialect in force, and whether it is the default or set
                # (by an operator, or by a refusal: docs/engine.md).
                "continuation": {
                    "dialect": continuation_in_force(
                        kind=s.kind,
                        base_url=s.base_url,
                        model=s.model,
                        continuation=s.continuation,
                    ),
                    "is_default": not s.continuation,
                },
                "recent": {
                    "calls": s.recent.attempts,
                    "successes": s.recent.answered,
                    "failures": s.recent.failures,
                    "rate_limited": s.recent.rate_limited,
                    "success_rate": s.recent.success_rate,
                    "mean_latency_ms": s.recent.mean_latency_ms,
                },
            }
            for s in statuses
        ],
    }
