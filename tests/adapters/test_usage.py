"""Tokens as each vendor reports them: every wire format, whole and streamed answers.

The recorded cases are replayed with ``responses`` straight into the adapter; the
expected numbers are the recorded ``extract`` (what the vendor's usage fields say),
and the cache and thinking counters, which no recording carries, come from
bodies built here in the vendors' documented shapes (reference/provider_apis.md).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import responses

from providers_app.adapters import ChatRequest, Message, ProviderError
from providers_app.adapters.usage import (
    CHARS_PER_TOKEN,
    anthropic_usage,
    estimate_tokens,
    gemini_usage,
    openai_usage,
    usage_of,
)

FIXTURES = Path(__file__).parent.parent / "fixtures" / "providers"
REQUEST = ChatRequest(messages=(Message(role="user", content="What is the capital of Peru?"),))
STREAM_TYPES = ("text/event-stream", "application/x-ndjson")


def _recorded(kind: str, case: str) -> dict[str, Any]:
    return json.loads((FIXTURES / kind / f"{case}.json").read_text())


def _serve(mock: responses.RequestsMock, case: dict[str, Any]) -> None:
    body = case["body"]
    mock.add(
        responses.POST,
        re.compile(r"https?://.*"),
        body=body if isinstance(body, str) else json.dumps(body),
        status=case["status"],
        headers={k: v for k, v in case["headers"].items() if k.lower() != "content-length"},
    )


def _stream_end(adapter: Any) -> Any:
    deltas = list(adapter.stream(REQUEST, timeout=5, first_token_timeout=5, idle_timeout=5))
    return deltas[-1]


REPORTED = [
    (kind, case)
    for kind, case in [
        ("openai", "success"),
        ("openai", "stream"),
        ("azure_openai", "success"),
        ("azure_openai", "stream"),
        ("anthropic", "success"),
        ("anthropic", "stream"),
        ("gemini", "success"),
        ("gemini", "stream"),
        ("ollama", "success"),
        ("ollama", "stream"),
        ("openai_compatible", "success_vllm"),
        ("openai_compatible", "stream_groq"),
    ]
]


@pytest.mark.parametrize(("kind", "case_name"), REPORTED, ids=[f"{k}/{c}" for k, c in REPORTED])
def test_recorded_usage_reaches_the_result(make_adapter, kind, case_name):
    case = _recorded(kind, case_name)
    extract = case["expected"]["extract"]
    adapter = make_adapter(kind)
    with responses.RequestsMock() as mock:
        _serve(mock, case)
        if case["headers"].get("content-type", "").startswith(STREAM_TYPES):
            end = _stream_end(adapter)
        else:
            end = adapter.complete(REQUEST, timeout=5)
    # Azure's recorded stream carries no usage (an api-version without
    # include_usage): None here, estimated by the engine (tests/engine/test_usage.py).
    assert (end.input_tokens, end.output_tokens) == (
        extract.get("input_tokens"),
        extract.get("output_tokens"),
    )


def _openai_body(usage: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Lima."},
                     "finish_reason": "stop"}],
        "usage": usage,
    }  # fmt: skip


def test_openai_cached_prompt_tokens_are_kept(make_adapter):
    usage = {"prompt_tokens": 2048, "completion_tokens": 7, "total_tokens": 2055,
             "prompt_tokens_details": {"cached_tokens": 1536}}  # fmt: skip
    with responses.RequestsMock() as mock:
        mock.add(responses.POST, re.compile(r"https://.*"), json=_openai_body(usage))
        result = make_adapter("openai").complete(REQUEST, timeout=5)
    assert (result.input_tokens, result.cached_input_tokens, result.output_tokens) == (
        2048, 1536, 7,
    )  # fmt: skip


def test_openai_stream_reads_the_usage_only_chunk_with_cached_tokens(make_adapter):
    chunks = [
        {"id": "c", "model": "m", "choices": [{"index": 0, "delta": {"content": "Lima."}}],
         "usage": None},
        {"id": "c", "model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
         "usage": None},
        {"id": "c", "model": "m", "choices": [],
         "usage": {"prompt_tokens": 40, "completion_tokens": 3,
                   "prompt_tokens_details": {"cached_tokens": 32}}},
    ]  # fmt: skip
    body = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
    with responses.RequestsMock() as mock:
        mock.add(responses.POST, re.compile(r"https://.*"), body=body,
                 headers={"content-type": "text/event-stream"})  # fmt: skip
        end = _stream_end(make_adapter("openai"))
        sent = json.loads(mock.calls[0].request.body)
    assert sent["stream_options"] == {"include_usage": True}
    assert (end.input_tokens, end.cached_input_tokens, end.output_tokens) == (40, 32, 3)


def test_anthropic_cache_reads_and_writes_are_prompt_tokens():
    reported = anthropic_usage(
        {"input_tokens": 5, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 20,
         "output_tokens": 9}
    )  # fmt: skip
    assert reported == {"input_tokens": 125, "output_tokens": 9, "cached_input_tokens": 100}
    # message_delta of older API versions: output only, input left as it was.
    assert anthropic_usage({"output_tokens": 12})["input_tokens"] is None


def test_gemini_thinking_tokens_are_output_and_cached_content_is_cached():
    reported = gemini_usage(
        {"promptTokenCount": 300, "candidatesTokenCount": 20, "thoughtsTokenCount": 80,
         "cachedContentTokenCount": 256, "totalTokenCount": 400}
    )  # fmt: skip
    assert reported == {"input_tokens": 300, "output_tokens": 100, "cached_input_tokens": 256}


def test_garbage_counters_are_not_counts():
    assert openai_usage({"prompt_tokens": "12", "completion_tokens": -1}) == {
        "input_tokens": None, "output_tokens": None, "cached_input_tokens": None,
    }  # fmt: skip


def test_a_stream_cut_after_output_carries_the_usage_reported_before_the_cut(make_adapter):
    case = _recorded("anthropic", "stream_midstream_overloaded")
    adapter = make_adapter("anthropic")
    with responses.RequestsMock() as mock:
        _serve(mock, case)
        with pytest.raises(ProviderError) as raised:
            _stream_end(adapter)
    error = raised.value
    assert error.output_produced
    assert error.input_tokens == 15  # message_start.message.usage.input_tokens
    billed = usage_of(
        error.input_tokens, error.output_tokens, prompt_text="x", output_text=error.partial_text,
        failed_attempt=True,
    )  # fmt: skip
    assert billed.input_tokens == 15
    assert billed.failed_attempt


def test_unreported_counts_are_estimated_and_marked():
    usage = usage_of(None, None, prompt_text="a" * 41, output_text="b" * 8)
    assert (usage.input_tokens, usage.output_tokens, usage.estimated) == (11, 2, True)
    assert estimate_tokens("abcd" * 10) == 40 // CHARS_PER_TOKEN
    assert usage_of(3, 4, prompt_text="whatever").estimated is False
