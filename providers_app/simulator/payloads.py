"""OpenAI-shaped bodies the simulator sends: completions, stream chunks, errors.

Shapes follow the OpenAI wire format in ``docs/vendors.md`` and the recorded
fixtures under ``tests/fixtures/providers/openai``, so an adapter that parses the simulator also
parses the real service.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterable
from http import HTTPStatus
from typing import Any

_WORD = re.compile(r"\s*\S+")

# Default error texts per status, copied from what OpenAI sends (tests/fixtures/providers/openai).
_SERVER_ERROR_MESSAGE = (
    "The server had an error processing your request. Sorry about that! You can retry "
    "your request, or contact us through our help center at help.openai.com if you keep "
    "seeing this error. (Please include the request ID {request_id} in your email.)"
)
_DEFAULT_ERRORS: dict[int, tuple[str, str, str | None]] = {
    # status: (message, type, code)
    400: ("Invalid value for 'messages'.", "invalid_request_error", "invalid_value"),
    401: (
        "Incorrect API key provided: sk-sim-****. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
        "invalid_request_error",
        "invalid_api_key",
    ),
    403: (
        "Country, region, or territory not supported",
        "request_forbidden",
        "unsupported_country_region_territory",
    ),
    404: (
        "The model `{model}` does not exist or you do not have access to it.",
        "invalid_request_error",
        "model_not_found",
    ),
    500: (_SERVER_ERROR_MESSAGE, "server_error", None),
    502: ("Bad gateway.", "server_error", None),
    503: ("The engine is currently overloaded, please try again later.", "server_error", None),
    504: ("Gateway timeout.", "server_error", None),
}
_QUOTA_MESSAGE = (
    "You exceeded your current quota, please check your plan and billing details. For "
    "more information on this error, read the docs: "
    "https://platform.openai.com/docs/guides/error-codes/api-errors."
)
# Deliberately without "Please try again in Xs": the text is a retry hint of its
# own (docs/vendors.md, "Retry hints"), and tests of Retry-After parsing must control every hint.
_RATE_LIMIT_MESSAGE = (
    "Rate limit reached for {model} in organization org-simulator on requests per min "
    "(RPM): Limit 60, Used 60, Requested 1."
)
_MIDSTREAM_MESSAGE = "The server had an error while processing your request. Sorry about that!"


def new_request_id() -> str:
    return f"req_{uuid.uuid4().hex}"


def new_completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


def new_tool_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def tool_call(call_id: str, *, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def split_fragments(text: str, size: int = 8) -> list[str]:
    """Argument text in the arbitrary pieces a real stream cuts it into."""
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def split_words(text: str) -> list[str]:
    """Split into stream pieces that keep their leading space: "a b" -> ["a", " b"]."""
    return _WORD.findall(text) or [text]


def count_words(text: str) -> int:
    return len(text.split())


def prompt_words(messages: Iterable[Any]) -> int:
    """Word count of every text part of every message: the simulator's "tokens"."""
    total = 0
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            total += count_words(content)
        elif isinstance(content, list):
            total += sum(
                count_words(part["text"])
                for part in content
                if isinstance(part, dict) and isinstance(part.get("text"), str)
            )
    return total


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def chat_completion(
    *, completion_id: str, model: str, text: str, finish_reason: str, usage_: dict[str, Any]
) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": text,
                    "refusal": None,
                    "annotations": [],
                },
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": usage_,
        "service_tier": "default",
        "system_fingerprint": "fp_simulator",
    }


class ChunkFactory:
    """Builds the ``chat.completion.chunk`` objects of one stream."""

    def __init__(self, *, completion_id: str, model: str, include_usage: bool) -> None:
        self.completion_id = completion_id
        self.model = model
        self.include_usage = include_usage
        self.created = int(time.time())

    def _chunk(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        chunk: dict[str, Any] = {
            "id": self.completion_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "service_tier": "default",
            "system_fingerprint": "fp_simulator",
            "choices": choices,
        }
        if self.include_usage:
            # With include_usage OpenAI puts "usage": null on every chunk.
            chunk["usage"] = None
        return chunk

    def _choice(self, delta: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
        return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}

    def role(self) -> dict[str, Any]:
        delta = {"role": "assistant", "content": "", "refusal": None}
        return self._chunk([self._choice(delta, None)])

    def content(self, piece: str) -> dict[str, Any]:
        return self._chunk([self._choice({"content": piece}, None)])

    def finish(self, finish_reason: str) -> dict[str, Any]:
        return self._chunk([self._choice({}, finish_reason)])

    def tool_call_start(self, call_id: str, name: str) -> dict[str, Any]:
        entry = {"index": 0, "id": call_id, "type": "function"}
        entry["function"] = {"name": name, "arguments": ""}
        return self._chunk([self._choice({"tool_calls": [entry]}, None)])

    def tool_call_arguments(self, piece: str) -> dict[str, Any]:
        entry = {"index": 0, "function": {"arguments": piece}}
        return self._chunk([self._choice({"tool_calls": [entry]}, None)])

    def usage(self, usage_: dict[str, Any]) -> dict[str, Any]:
        chunk = self._chunk([])
        chunk["usage"] = usage_
        return chunk


def error_body(
    status: int,
    *,
    model: str,
    request_id: str,
    message: str | None = None,
    type_: str | None = None,
    code: str | None = None,
    param: str | None = None,
) -> dict[str, Any]:
    """``{"error": {...}}`` with OpenAI's usual text for ``status`` unless overridden."""
    fallback_type = "server_error" if status >= 500 else "invalid_request_error"
    default_message, default_type, default_code = _DEFAULT_ERRORS.get(
        status, (_status_phrase(status), fallback_type, None)
    )
    if message is None:
        message = default_message.format(model=model, request_id=request_id)
    return {
        "error": {
            "message": message,
            "type": type_ if type_ is not None else default_type,
            "param": param,
            "code": code if code is not None else default_code,
        }
    }


def rate_limit_body(*, model: str, message: str | None) -> dict[str, Any]:
    text = message if message is not None else _RATE_LIMIT_MESSAGE.format(model=model)
    return {
        "error": {"message": text, "type": "requests", "param": None, "code": "rate_limit_exceeded"}
    }


def quota_body(*, message: str | None) -> dict[str, Any]:
    return {
        "error": {
            "message": message if message is not None else _QUOTA_MESSAGE,
            "type": "insufficient_quota",
            "param": None,
            "code": "insufficient_quota",
        }
    }


def midstream_error_event(*, message: str | None) -> dict[str, Any]:
    """The ``data:`` payload OpenAI sends when a stream fails after it started."""
    return {
        "error": {
            "message": message if message is not None else _MIDSTREAM_MESSAGE,
            "type": "server_error",
            "param": None,
            "code": None,
        }
    }


def invalid_request(message: str, *, param: str | None) -> dict[str, Any]:
    return {
        "error": {
            "message": message,
            "type": "invalid_request_error",
            "param": param,
            "code": None,
        }
    }


def model_object(model: str) -> dict[str, Any]:
    return {"id": model, "object": "model", "created": 1700000000, "owned_by": "simulator"}


def models_list(model: str) -> dict[str, Any]:
    return {"object": "list", "data": [model_object(model)]}


def gateway_html(status: int) -> str:
    """The page nginx serves when its upstream is gone."""
    title = f"{status} {_status_phrase(status)}".strip()
    return (
        "<html>\r\n"
        f"<head><title>{title}</title></head>\r\n"
        "<body>\r\n"
        f"<center><h1>{title}</h1></center>\r\n"
        "<hr><center>nginx</center>\r\n"
        "</body>\r\n"
        "</html>\r\n"
    )


def _status_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
