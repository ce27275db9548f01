"""The official `openai` SDK, unchanged, through the service to every vendor's wire format.

Each case replays one recorded fixture file per vendor
(``tests/fixtures/providers/<vendor>/fidelity/<case>.json``: the vendor's
documented response or stream, and the exact request body the vendor must
receive). The upstream is mocked in-process with ``responses`` (the live server's
thread uses ``requests``; the SDK uses httpx, so the client side stays real), and
every request the vendor received is compared with the recorded one whole.
"""

import base64
import json
import re
from pathlib import Path
from typing import Any

import openai
import pytest
import responses
from pydantic import BaseModel
from responses.registries import OrderedRegistry

from tests.factories import provider_create

ANY_URL = re.compile(r".*")
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "providers"
TEST_KEY = "sk-test-fidelity-0000000000000000"
VENDORS: dict[str, dict[str, Any]] = {
    "openai": {"base_url": "https://api.openai.com/v1", "model": "gpt-4o-mini"},
    "azure_openai": {
        "base_url": "https://example-resource.openai.azure.com",
        "model": "chat-gpt4o",
        "extra": {"params": {"api-version": "2024-10-21"}},
    },
    # Vision depends on the model for these two: the operator turns it on.
    "openai_compatible": {
        "base_url": "http://vllm.internal:8000/v1",
        "model": "meta-llama/Llama-3.3-70B-Instruct",
        "supports_images": True,
    },
    "anthropic": {"base_url": "https://api.anthropic.com", "model": "claude-sonnet-4-5"},
    "gemini": {
        "base_url": "https://generativelanguage.googleapis.com",
        "model": "gemini-2.5-flash",
    },
    "ollama": {"base_url": "http://localhost:11434", "model": "llama3.2", "supports_images": True},
}
QUESTION = [{"role": "user", "content": "What is the weather in Oslo?"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather for a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]
TOOL_RESULT = json.dumps({"temp_c": 18})
FINAL = "It is 18 °C in Oslo."
ARGS = {"city": "Oslo"}
# A 1x1 PNG: a real image, small enough to read in the fixture.
PNG = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c63f8cfc0f01f0005000201e2217bc50000000049454e44ae426082"
    )
).decode()


class Weather(BaseModel):
    city: str
    temp_c: float


@pytest.fixture(params=sorted(VENDORS))
def vendor(request, db, monkeypatch) -> str:
    kind = request.param
    monkeypatch.setenv("FIDELITY_TEST_KEY", TEST_KEY)
    config = VENDORS[kind]
    provider_create(
        name=f"{kind}-upstream",
        kind=kind,
        base_url=config["base_url"],
        model=config["model"],
        extra=config.get("extra", {}),
        supports_images=config.get("supports_images"),
        api_key_env="FIDELITY_TEST_KEY",
        max_attempts=1,
    )
    return kind


@pytest.fixture
def sdk(live_server, api_key):
    with openai.OpenAI(
        base_url=f"{live_server.url}/v1", api_key=api_key, max_retries=0, timeout=15
    ) as client:
        yield client


def load_case(kind: str, case: str) -> dict[str, Any]:
    return json.loads((FIXTURES / kind / "fidelity" / f"{case}.json").read_text())


def upstream(fixture: dict[str, Any]) -> responses.RequestsMock:
    """The vendor: answers each request in turn with the recorded responses."""
    mock = responses.RequestsMock(registry=OrderedRegistry, assert_all_requests_are_fired=True)
    for exchange in fixture["exchanges"]:
        answer = exchange["response"]
        body = answer["body"]
        mock.add(
            responses.POST,
            url=ANY_URL,
            status=answer["status"],
            content_type=answer["headers"]["content-type"],
            body=body if isinstance(body, str) else json.dumps(body),
        )
    return mock


def assert_vendor_received(mock: responses.RequestsMock, fixture: dict[str, Any]) -> None:
    sent = [json.loads(call.request.body) for call in mock.calls]
    assert sent == [exchange["request"] for exchange in fixture["exchanges"]]


def as_history(message) -> dict[str, Any]:
    """The assistant message as a client sends it back (vendor extensions included)."""
    return message.model_dump(exclude_none=True, exclude={"refusal", "annotations", "audio"})


def test_tool_call_round_trip(sdk, vendor):
    fixture = load_case(vendor, "tool_round_trip")
    with upstream(fixture) as mock:
        first = sdk.chat.completions.create(
            model="fallback", messages=QUESTION, tools=TOOLS, tool_choice="auto"
        )
        choice = first.choices[0]
        (call,) = choice.message.tool_calls
        assert choice.finish_reason == "tool_calls"
        assert call.function.name == "get_weather"
        assert json.loads(call.function.arguments) == {"city": "Oslo"}
        assert call.id.startswith("call_")
        assert len(call.id) <= 40

        second = sdk.chat.completions.create(
            model="fallback",
            messages=[
                *QUESTION,
                as_history(choice.message),
                {"role": "tool", "tool_call_id": call.id, "content": TOOL_RESULT},
            ],
            tools=TOOLS,
        )
        assert second.choices[0].message.content == FINAL
        assert second.choices[0].finish_reason == "stop"
        assert_vendor_received(mock, fixture)


def test_tool_call_round_trip_streamed(sdk, vendor):
    fixture = load_case(vendor, "tool_round_trip_stream")
    with upstream(fixture) as mock:
        # The SDK's own stream helper accumulates delta.tool_calls into the call.
        with sdk.chat.completions.stream(model="fallback", messages=QUESTION, tools=TOOLS) as s:
            events = [event.type for event in s]
            first = s.get_final_completion()
        choice = first.choices[0]
        (call,) = choice.message.tool_calls
        assert "tool_calls.function.arguments.done" in events
        assert choice.finish_reason == "tool_calls"
        assert call.function.name == "get_weather"
        assert json.loads(call.function.arguments) == {"city": "Oslo"}

        history = [
            *QUESTION,
            as_history(choice.message),
            {"role": "tool", "tool_call_id": call.id, "content": TOOL_RESULT},
        ]
        with sdk.chat.completions.stream(model="fallback", messages=history, tools=TOOLS) as s:
            for _ in s:
                pass
            second = s.get_final_completion()
        assert second.choices[0].message.content == FINAL
        assert_vendor_received(mock, fixture)


def test_json_schema_parsed_by_the_sdk_parse_helper(sdk, vendor):
    fixture = load_case(vendor, "json_schema_parse")
    with upstream(fixture) as mock:
        completion = sdk.chat.completions.parse(
            model="fallback",
            messages=[{"role": "user", "content": "Weather in Oslo as JSON."}],
            response_format=Weather,
        )
        assert completion.choices[0].message.parsed == Weather(city="Oslo", temp_c=18)
        assert_vendor_received(mock, fixture)


def test_image_prompt(sdk, vendor):
    fixture = load_case(vendor, "image_prompt")
    parts: list[dict[str, Any]] = [
        {"type": "text", "text": "What is in this picture?"},
        {
            "type": "image_url",
            "image_url": {"url": f"data:image/png;base64,{PNG}", "detail": "low"},
        },
    ]
    with upstream(fixture) as mock:
        completion = sdk.chat.completions.create(
            model="fallback", messages=[{"role": "user", "content": parts}]
        )
        assert completion.choices[0].message.content == "A red square on a white background."
        assert_vendor_received(mock, fixture)


def _provider(kind: str, priority: int, **overrides: Any) -> None:
    config = {**VENDORS[kind], **overrides}
    provider_create(
        name=f"{kind}-{priority}",
        kind=kind,
        base_url=config["base_url"],
        model=config["model"],
        extra=config.get("extra", {}),
        api_key_env="FIDELITY_TEST_KEY",
        max_attempts=1,
    )


@pytest.mark.parametrize(
    ("second", "model"),
    [("anthropic", "claude-sonnet-4-5"), ("gemini", "gemini-3-flash-preview")],
)
def test_failover_after_the_tool_result_continues_on_another_vendor_with_matching_ids(
    sdk, db, monkeypatch, second, model
):
    """OpenAI made the call; it fails once the result is sent; another vendor answers."""
    monkeypatch.setenv("FIDELITY_TEST_KEY", TEST_KEY)
    _provider("openai", 1)
    _provider(second, 2, model=model)
    openai_call = load_case("openai", "tool_round_trip")["exchanges"][0]["response"]["body"]
    final = load_case(second, "tool_round_trip")["exchanges"][1]["response"]["body"]
    with responses.RequestsMock(registry=OrderedRegistry) as mock:
        mock.add(responses.POST, "https://api.openai.com/v1/chat/completions", json=openai_call)
        mock.add(
            responses.POST,
            "https://api.openai.com/v1/chat/completions",
            status=500,
            json={"error": {"message": "The server had an error", "type": "server_error"}},
        )
        mock.add(responses.POST, ANY_URL, json=final)

        first = sdk.chat.completions.create(model="fallback", messages=QUESTION, tools=TOOLS)
        (call,) = first.choices[0].message.tool_calls
        raw = sdk.chat.completions.with_raw_response.create(
            model="fallback",
            messages=[
                *QUESTION,
                as_history(first.choices[0].message),
                {"role": "tool", "tool_call_id": call.id, "content": TOOL_RESULT},
            ],
            tools=TOOLS,
        )
        answer = raw.parse()
        received = json.loads(mock.calls[2].request.body)

    assert answer.choices[0].message.content == FINAL
    assert raw.headers["X-Fallback-Provider"] == f"{second}-2"
    assert raw.headers["X-Fallback-Attempts"] == "2"
    if second == "anthropic":
        assistant, results = received["messages"][1]["content"], received["messages"][2]["content"]
        assert assistant[0] == {
            "type": "tool_use",
            "id": call.id,
            "name": "get_weather",
            "input": {"city": "Oslo"},
        }
        assert results == [{"type": "tool_result", "tool_use_id": call.id, "content": TOOL_RESULT}]
    else:
        # Gemini 3 pairs by id, and wants a thought signature on a call it did not make.
        model_turn, results = received["contents"][1]["parts"], received["contents"][2]["parts"]
        assert model_turn == [
            {
                "functionCall": {"id": call.id, "name": "get_weather", "args": {"city": "Oslo"}},
                "thoughtSignature": "skip_thought_signature_validator",
            }
        ]
        assert results == [
            {
                "functionResponse": {
                    "id": call.id,
                    "name": "get_weather",
                    "response": {"output": {"temp_c": 18}},
                }
            }
        ]


def test_a_gemini_3_thought_signature_travels_through_the_client_and_back(sdk, db, monkeypatch):
    monkeypatch.setenv("FIDELITY_TEST_KEY", TEST_KEY)
    _provider("gemini", 1, model="gemini-3-flash-preview")
    signed_call = {
        "responseId": "r-3",
        "modelVersion": "gemini-3-flash-preview",
        "candidates": [
            {
                "finishReason": "STOP",
                "content": {
                    "role": "model",
                    "parts": [
                        {
                            "functionCall": {"id": "fc_7Qe2", "name": "get_weather", "args": ARGS},
                            "thoughtSignature": "CiQBcsjafE",
                        }
                    ],
                },
            }
        ],
    }
    final = load_case("gemini", "tool_round_trip")["exchanges"][1]["response"]["body"]
    with responses.RequestsMock(registry=OrderedRegistry) as mock:
        mock.add(responses.POST, ANY_URL, json=signed_call)
        mock.add(responses.POST, ANY_URL, json=final)

        first = sdk.chat.completions.create(model="fallback", messages=QUESTION, tools=TOOLS)
        (call,) = first.choices[0].message.tool_calls
        assert call.model_extra["extra_content"] == {"google": {"thought_signature": "CiQBcsjafE"}}
        sdk.chat.completions.create(
            model="fallback",
            messages=[
                *QUESTION,
                as_history(first.choices[0].message),
                {"role": "tool", "tool_call_id": call.id, "content": TOOL_RESULT},
            ],
            tools=TOOLS,
        )
        received = json.loads(mock.calls[1].request.body)

    assert received["contents"][1]["parts"] == [
        {
            "functionCall": {"id": call.id, "name": "get_weather", "args": ARGS},
            "thoughtSignature": "CiQBcsjafE",
        }
    ]


def test_streamed_failover_after_the_tool_result_continues_on_another_vendor(sdk, db, monkeypatch):
    monkeypatch.setenv("FIDELITY_TEST_KEY", TEST_KEY)
    _provider("openai", 1)
    _provider("anthropic", 2)
    openai_call = load_case("openai", "tool_round_trip")["exchanges"][0]["response"]["body"]
    streamed = load_case("anthropic", "tool_round_trip_stream")["exchanges"][1]["response"]
    with responses.RequestsMock(registry=OrderedRegistry) as mock:
        mock.add(responses.POST, "https://api.openai.com/v1/chat/completions", json=openai_call)
        mock.add(responses.POST, "https://api.openai.com/v1/chat/completions", status=503)
        mock.add(responses.POST, ANY_URL, body=streamed["body"], content_type="text/event-stream")

        first = sdk.chat.completions.create(model="fallback", messages=QUESTION, tools=TOOLS)
        (call,) = first.choices[0].message.tool_calls
        history = [
            *QUESTION,
            as_history(first.choices[0].message),
            {"role": "tool", "tool_call_id": call.id, "content": TOOL_RESULT},
        ]
        stream = sdk.chat.completions.create(
            model="fallback", messages=history, tools=TOOLS, stream=True
        )
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        provider = stream.response.headers["X-Fallback-Provider"]
        received = json.loads(mock.calls[2].request.body)

    assert text == FINAL
    assert provider == "anthropic-2"
    assert received["messages"][1]["content"][0]["id"] == call.id
    assert received["messages"][2]["content"][0]["tool_use_id"] == call.id
