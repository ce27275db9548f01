"""How each vendor receives a partial answer to continue (a prefill), and which refuse.

The mid-stream rescue sends the request plus the delivered text as a final
assistant message with ``continue_final`` set (engine/continuation.py).
"""

from __future__ import annotations

import json
import re

import pytest
import responses

from providers_app.adapters import ChatRequest, Message, ProviderError

CONTINUE = ChatRequest(
    messages=(
        Message("user", "Name three fjords."),
        Message("assistant", "1. Sognefjord\n2. Hardangerfjord\n"),
    ),
    continue_final=True,
)
OPENAI_OK = {"model": "m", "choices": [{"message": {"content": "3."}, "finish_reason": "stop"}]}
REPLIES = {
    "anthropic": {
        "model": "c",
        "content": [{"type": "text", "text": "3."}],
        "stop_reason": "end_turn",
    },
    "gemini": {"candidates": [{"content": {"parts": [{"text": "3."}]}, "finishReason": "STOP"}]},
    "ollama": {"model": "m", "message": {"content": "3."}, "done": True, "done_reason": "stop"},
    "openai_compatible": OPENAI_OK,
    "simulated": OPENAI_OK,
}


def _sent_body(adapter, reply) -> dict:
    with responses.RequestsMock() as mock:
        mock.add(responses.POST, re.compile(r"https?://.*"), json=reply)
        adapter.complete(CONTINUE, timeout=5.0)
        return json.loads(mock.calls[0].request.body)


def test_anthropic_gets_a_final_assistant_message_without_trailing_whitespace(make_adapter):
    body = _sent_body(make_adapter("anthropic"), REPLIES["anthropic"])
    # Anthropic answers 400 to a final assistant text ending in whitespace.
    assert body["messages"][-1] == {
        "role": "assistant",
        "content": "1. Sognefjord\n2. Hardangerfjord",
    }


def test_anthropic_keeps_whitespace_of_ordinary_history(make_adapter):
    request = ChatRequest(messages=(Message("assistant", "Hi "), Message("user", "Go on")))
    adapter = make_adapter("anthropic")
    with responses.RequestsMock() as mock:
        mock.add(responses.POST, re.compile(".*"), json=REPLIES["anthropic"])
        adapter.complete(request, timeout=5.0)
        assert json.loads(mock.calls[0].request.body)["messages"][0]["content"] == "Hi "


def test_gemini_gets_a_final_model_turn(make_adapter):
    body = _sent_body(make_adapter("gemini"), REPLIES["gemini"])
    assert body["contents"][-1] == {
        "role": "model",
        "parts": [{"text": "1. Sognefjord\n2. Hardangerfjord\n"}],
    }


@pytest.mark.parametrize("kind", ["ollama", "openai_compatible", "simulated"])
def test_ollama_and_openai_compatible_servers_get_a_final_assistant_message(make_adapter, kind):
    adapter = make_adapter(kind, api_key=None)
    body = _sent_body(adapter, REPLIES[kind])
    assert body["messages"][-1] == {
        "role": "assistant",
        "content": "1. Sognefjord\n2. Hardangerfjord\n",
    }


PARTIAL = "1. Sognefjord\n2. Hardangerfjord\n"


@pytest.mark.parametrize(
    ("dialect", "last_message", "flags"),
    [
        ("trailing_assistant", {"role": "assistant", "content": PARTIAL}, {}),
        (
            "vllm",
            {"role": "assistant", "content": PARTIAL},
            {"continue_final_message": True, "add_generation_prompt": False},
        ),
        ("prefix", {"role": "assistant", "content": PARTIAL, "prefix": True}, {}),
    ],
)
@pytest.mark.parametrize("kind", ["openai_compatible", "simulated"])
def test_each_continuation_dialect_has_its_exact_wire_form(
    make_adapter, kind, dialect, last_message, flags
):
    """Reference §7.5-7.8: vLLM's two flags, Mistral/DeepSeek's prefix, or nothing."""
    body = _sent_body(make_adapter(kind, api_key=None, continuation=dialect), REPLIES[kind])
    assert body["messages"] == [{"role": "user", "content": "Name three fjords."}, last_message]
    assert {
        k: body[k] for k in ("continue_final_message", "add_generation_prompt") if k in body
    } == (flags)


def test_a_provider_whose_dialect_is_none_refuses_before_calling(make_adapter):
    adapter = make_adapter("openai_compatible", api_key=None, continuation="none")
    with responses.RequestsMock() as mock, pytest.raises(ProviderError) as raised:
        adapter.complete(CONTINUE, timeout=5.0)
    assert len(mock.calls) == 0
    assert "cannot continue" in raised.value.message


def test_an_ordinary_request_carries_no_dialect_marks(make_adapter):
    """The flags belong to a continuation only: a trailing assistant message in a
    request that is not one is history."""
    adapter = make_adapter("openai_compatible", api_key=None, continuation="vllm")
    request = ChatRequest(messages=CONTINUE.messages)
    with responses.RequestsMock() as mock:
        mock.add(responses.POST, re.compile(".*"), json=OPENAI_OK)
        adapter.complete(request, timeout=5.0)
        body = json.loads(mock.calls[0].request.body)
    assert "continue_final_message" not in body
    assert "prefix" not in body["messages"][-1]


@pytest.mark.parametrize("kind", ["openai", "azure_openai"])
def test_openai_and_azure_refuse_a_prefill_without_calling(make_adapter, kind):
    """They would silently start a new answer; the refusal is a classified 400-like error."""
    extra = {"params": {"api-version": "2024-10-21"}} if kind == "azure_openai" else {}
    adapter = make_adapter(kind, **extra)
    with responses.RequestsMock() as mock, pytest.raises(ProviderError) as raised:
        adapter.complete(CONTINUE, timeout=5.0)
    assert len(mock.calls) == 0
    assert raised.value.category == "invalid_request"
    assert "cannot continue" in raised.value.message


def test_a_continuation_is_held_to_the_json_rule_with_its_prefill(make_adapter):
    """Under json_object the whole answer is the prefill plus the continuation."""
    from providers_app.adapters.schema import ResponseFormat

    request = ChatRequest(
        messages=(Message("user", "JSON please"), Message("assistant", '{"a": ')),
        response_format=ResponseFormat(type="json_object"),
        continue_final=True,
    )
    reply = {"model": "m", "choices": [{"message": {"content": "1}"}, "finish_reason": "stop"}]}
    adapter = make_adapter("simulated", api_key=None)
    with responses.RequestsMock() as mock:
        mock.add(responses.POST, re.compile(".*"), json=reply)
        assert adapter.complete(request, timeout=5.0).text == "1}"
