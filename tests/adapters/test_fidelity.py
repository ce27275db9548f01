"""Tools, structured output and images inside the adapters: ids, dialects, fit, streams."""

from __future__ import annotations

import json
import re

import pytest
import responses

from providers_app.adapters import Category, ChatRequest, Message, ProviderError
from providers_app.adapters.capabilities import default_capabilities, wire_limit
from providers_app.adapters.json_schemas import anthropic_schema, gemini_schema
from providers_app.adapters.schema import (
    ImagePart,
    ResponseFormat,
    TextPart,
    Tool,
    ToolCall,
    ToolChoice,
)
from providers_app.adapters.tool_ids import client_tool_id, outbound_id

TOOL = Tool("get_weather", "Current weather", {"type": "object", "properties": {}})
ASK = (Message("user", "Weather in Oslo?"),)
STRICT = ResponseFormat(
    "json_schema",
    name="w",
    strict=True,
    schema={
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
)


def _openai_reply(content=None, tool_calls=None):
    message = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": "chatcmpl-1",
        "model": "m",
        "choices": [{"message": message, "finish_reason": "stop"}],
    }


def _complete(adapter, request, reply):
    with responses.RequestsMock() as mock:
        mock.add(responses.POST, re.compile(".*"), json=reply)
        return adapter.complete(request, timeout=5), json.loads(mock.calls[0].request.body)


def _stream(adapter, request, body, content_type="text/event-stream"):
    with responses.RequestsMock() as mock:
        mock.add(responses.POST, re.compile(".*"), body=body, content_type=content_type)
        return list(adapter.stream(request, timeout=5, first_token_timeout=5, idle_timeout=5))


# -- ids -----------------------------------------------------------------------


def test_client_ids_are_deterministic_short_and_valid_for_every_vendor():
    first = client_tool_id("openai_compatible", "chatcmpl-9", "chatcmpl-tool-" + "a" * 32, 0)
    assert first == client_tool_id(
        "openai_compatible", "chatcmpl-9", "chatcmpl-tool-" + "a" * 32, 0
    )
    assert first != client_tool_id(
        "openai_compatible", "chatcmpl-10", "chatcmpl-tool-" + "a" * 32, 0
    )
    assert re.fullmatch(r"call_[A-Za-z0-9]{24}", first)
    for profile in ("openai", "anthropic", "gemini", "ollama"):
        assert outbound_id(profile, first) == first


def test_foreign_ids_are_rewritten_the_same_way_for_a_call_and_its_result():
    kimi = "functions.get_weather:0"  # `.` and `:` are refused by Anthropic
    rewritten = outbound_id("anthropic", kimi)
    assert rewritten != kimi
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", rewritten)
    assert outbound_id("anthropic", kimi) == rewritten
    assert re.fullmatch(r"[A-Za-z0-9]{9}", outbound_id("mistral", "call_abc"))
    assert len(outbound_id("openai", "x" * 41)) <= 40


# -- schema dialects -------------------------------------------------------------


def test_anthropic_schema_moves_unsupported_keywords_into_the_description():
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 2, "description": "Who"},
            "kind": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
        },
        "required": ["name"],
    }
    reduced = anthropic_schema(schema)
    assert reduced["additionalProperties"] is False
    assert reduced["properties"]["name"] == {"type": "string", "description": "Who (minLength: 2)"}
    assert reduced["properties"]["kind"] == {"anyOf": [{"type": "string"}, {"type": "integer"}]}
    assert schema["properties"]["name"]["minLength"] == 2  # the client's schema is untouched


def test_gemini_schema_keeps_its_subset_and_turns_const_into_enum():
    reduced = gemini_schema(
        {"type": "object", "properties": {"v": {"const": "x", "pattern": "^x$"}}}
    )
    assert reduced["properties"]["v"] == {"enum": ["x"], "description": '(pattern: "^x$")'}


# -- answers that do not fit the request ----------------------------------------


UNMET = Category.RESPONSE_FORMAT_UNMET


@pytest.mark.parametrize(
    ("request_format", "content", "detail", "category"),
    [
        (None, "", "no text and no tool calls", Category.MALFORMED_RESPONSE),
        (ResponseFormat("json_object"), "Sure! Here it is: {", "not valid JSON", UNMET),
        (STRICT, '{"town": "Oslo"}', "does not fit the strict schema", UNMET),
    ],
)
def test_an_answer_that_does_not_fit_fails_over_and_only_a_broken_one_counts(
    make_adapter, request_format, content, detail, category
):
    """An empty answer is the provider's fault; missing the client's own format
    is the client's misfit: it fails over but the breaker ignores it."""
    adapter = make_adapter("openai")
    request = ChatRequest(messages=ASK, response_format=request_format)
    with pytest.raises(ProviderError) as raised:
        _complete(adapter, request, _openai_reply(content))
    assert raised.value.category == category
    assert detail in raised.value.message
    assert raised.value.policy.failover
    assert (raised.value.policy.breaker == "ignore") is (category == UNMET)


def test_a_non_strict_schema_only_needs_json(make_adapter):
    adapter = make_adapter("openai")
    loose = ResponseFormat("json_schema", name="w", schema=STRICT.schema, strict=False)
    result, _ = _complete(
        adapter, ChatRequest(messages=ASK, response_format=loose), _openai_reply("{}")
    )
    assert result.text == "{}"


def test_a_streamed_answer_that_is_not_json_under_json_mode_misses_the_format(make_adapter):
    adapter = make_adapter("openai")
    chunk = {"id": "c", "choices": [{"delta": {"content": "not json"}, "finish_reason": "stop"}]}
    body = f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n"
    with pytest.raises(ProviderError) as raised:
        _stream(
            adapter, ChatRequest(messages=ASK, response_format=ResponseFormat("json_object")), body
        )
    assert raised.value.category == Category.RESPONSE_FORMAT_UNMET
    assert raised.value.output_produced is True
    assert raised.value.partial_text == "not json"


# -- streamed tool calls -----------------------------------------------------------


def test_openai_compatible_stream_is_normalised_to_the_sdk_shape(make_adapter):
    """Repeated id/name in every chunk (some servers) and a missing index become
    one call: id and name once, then argument fragments, all at index 0."""
    adapter = make_adapter("openai_compatible")
    entries = [
        {"id": "chatcmpl-tool-1", "type": "function", "function": {"name": "f", "arguments": ""}},
        {"id": "chatcmpl-tool-1", "function": {"name": "f", "arguments": '{"a":'}},
        {"function": {"arguments": "1}"}},
    ]
    events = [
        {"id": "c1", "choices": [{"delta": {"tool_calls": [entry]}, "finish_reason": None}]}
        for entry in entries
    ]
    events[0]["choices"][0]["delta"]["tool_calls"][0]["index"] = 0
    events[1]["choices"][0]["delta"]["tool_calls"][0]["index"] = 0
    events.append({"id": "c1", "choices": [{"delta": {}, "finish_reason": "stop"}]})
    body = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"

    deltas = _stream(adapter, ChatRequest(messages=ASK, tools=(TOOL,)), body)

    pieces = [piece for delta in deltas for piece in delta.tool_calls]
    assert [p.index for p in pieces] == [0, 0, 0]
    assert [p.id is not None for p in pieces] == [True, False, False]
    assert "".join(p.arguments for p in pieces) == '{"a":1}'
    assert deltas[-1].finish_reason == "tool_calls"  # the server said "stop"


def test_anthropic_stream_numbers_calls_not_content_blocks(make_adapter):
    adapter = make_adapter("anthropic")
    events = [
        ("message_start", {"type": "message_start", "message": {"id": "msg_1", "usage": {}}}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": "Checking."}}),
        ("content_block_start", {"type": "content_block_start", "index": 1,
                                 "content_block": {"type": "tool_use", "id": "toolu_1",
                                                   "name": "a", "input": {}}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 1}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use"}}),
        ("message_stop", {"type": "message_stop"}),
    ]  # fmt: skip
    body = "".join(f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in events)

    deltas = _stream(adapter, ChatRequest(messages=ASK, tools=(TOOL,)), body)

    pieces = [piece for delta in deltas for piece in delta.tool_calls]
    assert [(p.index, p.name, p.arguments) for p in pieces] == [(0, "a", ""), (0, None, "{}")]
    assert deltas[-1].finish_reason == "tool_calls"


# -- requests ----------------------------------------------------------------------


def test_anthropic_history_with_tool_blocks_but_no_tools_gets_stub_definitions(make_adapter):
    adapter = make_adapter("anthropic")
    history = (
        *ASK,
        Message("assistant", "", tool_calls=(ToolCall("call_1", "lookup", '{"q": 1}'),)),
        Message("tool", "42", tool_call_id="call_1", name="lookup"),
        Message("user", "Thanks, and?"),
    )
    reply = {"id": "m", "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn"}
    _, sent = _complete(adapter, ChatRequest(messages=history), reply)
    assert sent["tools"] == [
        {"name": "lookup", "input_schema": {"type": "object", "additionalProperties": True}}
    ]
    assert sent["tool_choice"] == {"type": "none"}
    # The result opens the next user message, before the user's own text.
    assert sent["messages"][2] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "call_1", "content": "42"},
            {"type": "text", "text": "Thanks, and?"},
        ],
    }


def test_anthropic_tool_choice_and_parallel_switch(make_adapter):
    adapter = make_adapter("anthropic")
    request = ChatRequest(
        messages=ASK,
        tools=(TOOL,),
        tool_choice=ToolChoice("required", name="get_weather"),
        parallel_tool_calls=False,
    )
    reply = {"id": "m", "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn"}
    _, sent = _complete(adapter, request, reply)
    assert sent["tool_choice"] == {
        "type": "tool",
        "name": "get_weather",
        "disable_parallel_tool_use": True,
    }


def test_images_by_url_per_vendor(make_adapter):
    request = ChatRequest(
        messages=(Message("user", (TextPart("What?"), ImagePart("https://x.test/cat.png"))),)
    )
    anthropic_reply = {
        "id": "m",
        "content": [{"type": "text", "text": "ok"}],
        "stop_reason": "end_turn",
    }
    _, sent = _complete(make_adapter("anthropic"), request, anthropic_reply)
    assert sent["messages"][0]["content"][1] == {
        "type": "image",
        "source": {"type": "url", "url": "https://x.test/cat.png"},
    }
    gemini_reply = {
        "candidates": [{"content": {"parts": [{"text": "ok"}]}, "finishReason": "STOP"}]
    }
    _, sent = _complete(make_adapter("gemini"), request, gemini_reply)
    assert sent["contents"][0]["parts"][1] == {
        "fileData": {"mimeType": "image/png", "fileUri": "https://x.test/cat.png"}
    }
    assert wire_limit("ollama", "llava", request) == "image_url"


def test_gemini_3_signatures_come_back_to_gemini(make_adapter):
    adapter = make_adapter("gemini", model="gemini-3-flash-preview")
    reply = {
        "responseId": "r1",
        "candidates": [
            {
                "finishReason": "STOP",
                "content": {
                    "parts": [
                        {
                            "functionCall": {"id": "fc_1", "name": "get_weather", "args": {}},
                            "thoughtSignature": "CiQBsig",
                        }
                    ]
                },
            }
        ],
    }
    result, _ = _complete(adapter, ChatRequest(messages=ASK, tools=(TOOL,)), reply)
    (call,) = result.tool_calls
    assert call.thought_signature == "CiQBsig"
    assert result.finish_reason == "tool_calls"

    history = (*ASK, Message("assistant", "", tool_calls=(call,)),
               Message("tool", "{}", tool_call_id=call.id, name=call.name))  # fmt: skip
    ok = {"candidates": [{"content": {"parts": [{"text": "ok"}]}, "finishReason": "STOP"}]}
    _, sent = _complete(adapter, ChatRequest(messages=history, tools=(TOOL,)), ok)
    assert sent["contents"][1]["parts"][0]["thoughtSignature"] == "CiQBsig"
    assert sent["contents"][1]["parts"][0]["functionCall"]["id"] == call.id


def test_ollama_maps_json_object_and_drops_tools_only_for_choice_none(make_adapter):
    adapter = make_adapter("ollama")
    reply = {"model": "m", "message": {"content": "{}"}, "done": True}
    request = ChatRequest(
        messages=ASK, tools=(TOOL,), tool_choice=ToolChoice("none"),
        response_format=ResponseFormat("json_object"),
    )  # fmt: skip
    _, sent = _complete(adapter, request, reply)
    assert sent["format"] == "json"
    assert "tools" not in sent


# -- capabilities ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "model", "prefill", "structured"),
    [
        ("anthropic", "claude-sonnet-4-5", True, True),
        ("anthropic", "claude-opus-4-6", False, True),
        ("anthropic", "claude-3-5-haiku-20241022", True, False),
        ("gemini", "gemini-2.5-flash", True, True),
        ("gemini", "gemini-3.6-flash", False, True),
        ("openai", "gpt-4o", False, True),
    ],
)
def test_capability_defaults_follow_kind_and_model(kind, model, prefill, structured):
    capabilities = default_capabilities(kind, model)
    assert capabilities.prefill is prefill
    assert capabilities.structured_output is structured


def test_gemini_2_cannot_combine_tools_with_json_output():
    request = ChatRequest(
        messages=ASK, tools=(TOOL,), response_format=ResponseFormat("json_object")
    )
    assert wire_limit("gemini", "gemini-2.5-flash", request) == "tools_with_response_format"
    assert wire_limit("gemini", "gemini-3-flash-preview", request) is None


def test_requests_a_wire_format_cannot_carry_are_named():
    no_parallel = ChatRequest(messages=ASK, tools=(TOOL,), parallel_tool_calls=False)
    assert wire_limit("gemini", "gemini-3-flash-preview", no_parallel) == "parallel_tool_calls"
    assert wire_limit("ollama", "llama3.2", no_parallel) == "parallel_tool_calls"
    assert wire_limit("anthropic", "claude-sonnet-4-5", no_parallel) is None
    digit_name = ChatRequest(messages=ASK, tools=(Tool("3d_render"),))
    assert wire_limit("gemini", "gemini-2.5-flash", digit_name) == "tool_name"
    assert wire_limit("openai", "gpt-4o", digit_name) is None
    forced = ChatRequest(messages=ASK, tools=(TOOL,), tool_choice=ToolChoice("required"))
    assert wire_limit("ollama", "llama3.2", forced) == "tool_choice"
