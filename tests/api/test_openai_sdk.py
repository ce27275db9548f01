"""The official `openai` SDK, unchanged, against a live server and simulated upstreams.

The SDK's own retries are off (`max_retries=0`), so every upstream request count
below is exact: what the failover layer did, not what the client retried.
"""

import json

import openai
import pytest

from providers_app.models import Provider

from .fixtures import PRIMARY_MODEL, SECONDARY_MODEL

HELLO = [{"role": "user", "content": "Say hello."}]


@pytest.fixture
def sdk(live_server, api_key, providers):
    with openai.OpenAI(
        base_url=f"{live_server.url}/v1", api_key=api_key, max_retries=0, timeout=15
    ) as client:
        yield client


def test_plain_answer_names_the_upstream_model_and_provider(sdk, primary, secondary):
    raw = sdk.chat.completions.with_raw_response.create(model="fallback", messages=HELLO)
    completion = raw.parse()

    assert completion.choices[0].message.content == "Hello from primary."
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == PRIMARY_MODEL
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + 3
    assert raw.headers["X-Fallback-Provider"] == "primary"
    assert raw.headers["X-Fallback-Attempts"] == "1"
    assert raw.headers["X-Request-Id"] == completion.id.removeprefix("chatcmpl-")
    assert (primary.request_count, secondary.request_count) == (1, 0)


def test_primary_failure_fails_over_and_the_headers_say_so(sdk, primary, secondary):
    primary.set_fault("error", status=503)

    raw = sdk.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HELLO)

    assert raw.parse().choices[0].message.content == "Hello from secondary."
    assert raw.parse().model == SECONDARY_MODEL
    assert raw.headers["X-Fallback-Provider"] == "secondary"
    assert raw.headers["X-Fallback-Attempts"] == "2"
    assert (primary.request_count, secondary.request_count) == (1, 1)


def test_streamed_answer_arrives_in_chunks_with_usage(sdk, primary, secondary):
    stream = sdk.chat.completions.create(
        model="fallback",
        messages=HELLO,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from primary."
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) == 3
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens == 3
    assert {c.model for c in chunks} == {PRIMARY_MODEL}
    assert stream.response.headers["X-Fallback-Provider"] == "primary"
    assert stream.response.headers["Cache-Control"] == "no-cache"
    assert stream.response.headers["X-Accel-Buffering"] == "no"
    assert (primary.request_count, secondary.request_count) == (1, 0)


@pytest.mark.parametrize(
    ("mode", "options"),
    [
        ("error", {"status": 500}),
        ("truncate_stream", {"chunks": 0}),  # the stream ends before any output
        ("midstream_error", {"chunks_before": 0}),  # an error event before any output
    ],
)
def test_primary_failing_before_the_first_token_is_invisible(
    sdk, primary, secondary, mode, options
):
    primary.set_fault(mode, **options)

    with sdk.chat.completions.create(model="fallback", messages=HELLO, stream=True) as stream:
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        headers = stream.response.headers

    assert text == "Hello from secondary."
    assert headers["X-Fallback-Provider"] == "secondary"
    assert headers["X-Fallback-Attempts"] == "2"
    assert (primary.request_count, secondary.request_count) == (1, 1)


def test_failure_after_content_ends_in_an_error_the_sdk_raises(sdk, primary, secondary):
    primary.set_fault("midstream_error", chunks_before=2, message="upstream exploded")
    received = []

    def read_all():
        stream = sdk.chat.completions.create(model="fallback", messages=HELLO, stream=True)
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                received.append(chunk.choices[0].delta.content)

    with pytest.raises(openai.APIError) as raised:
        read_all()

    assert "".join(received) == "Hello from"  # the committed part, from one provider
    assert raised.value.body["partial"] is True
    assert raised.value.body["provider"] == "primary"
    assert raised.value.body["type"] == "stream_interrupted"
    assert "interrupted" in raised.value.message
    # Committed streams never switch providers.
    assert (primary.request_count, secondary.request_count) == (1, 0)


def test_a_stream_continued_after_a_cut_reads_as_one_answer_with_its_finisher(
    sdk, primary, secondary
):
    """Mid-stream rescue through the unchanged SDK: one answer, no error, and
    `x_fallback` readable from the extra fields of the finishing chunk; the hold-back
    option goes in extra_body."""
    Provider.objects.filter(name="secondary").update(continuation="trailing_assistant")
    text = "one two three four five six"
    primary.set_fault("truncate_stream", chunks=3, text=text)
    secondary.set_fault("ok", text=text)

    chunks = list(sdk.chat.completions.create(model="fallback", messages=HELLO, stream=True))

    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
    finisher = next(c for c in chunks if c.choices and c.choices[0].finish_reason)
    assert finisher.model_extra["x_fallback"] == {
        "provider": "secondary",
        "continued_from": ["primary"],
    }

    held = sdk.chat.completions.create(
        model="fallback",
        messages=HELLO,
        stream=True,
        extra_body={"x_fallback_hold_back": True},
    )
    assert "".join(c.choices[0].delta.content or "" for c in held if c.choices) == text


def test_every_provider_failing_is_a_503_with_retry_after(sdk, primary, secondary):
    primary.set_fault("error", status=500)
    secondary.set_fault("rate_limit", retry_after="30")

    with pytest.raises(openai.APIStatusError) as raised:
        sdk.chat.completions.create(model="fallback", messages=HELLO)

    error = raised.value
    assert error.status_code == 503
    assert int(error.response.headers["Retry-After"]) >= 1
    assert error.body["code"] == "all_providers_failed"
    assert [(p["provider"], p["reason"]) for p in error.body["providers"]] == [
        ("primary", "server_error"),
        ("secondary", "rate_limit"),
    ]
    assert (primary.request_count, secondary.request_count) == (1, 1)


def test_every_provider_failing_a_stream_is_a_503_before_any_chunk(sdk, primary, secondary):
    primary.set_fault("error", status=502)
    secondary.set_fault("error", status=500)

    with pytest.raises(openai.APIStatusError) as raised:
        sdk.chat.completions.create(model="fallback", messages=HELLO, stream=True)

    assert raised.value.status_code == 503
    assert (primary.request_count, secondary.request_count) == (1, 1)


def test_a_bad_key_is_an_authentication_error(live_server, providers, primary):
    with (
        openai.OpenAI(
            base_url=f"{live_server.url}/v1", api_key="fbk_wrong", max_retries=0
        ) as client,
        pytest.raises(openai.AuthenticationError),
    ):
        client.chat.completions.create(model="fallback", messages=HELLO)
    assert primary.request_count == 0


def test_an_unsupported_field_is_a_bad_request_naming_it(sdk, primary):
    with pytest.raises(openai.BadRequestError) as raised:
        sdk.chat.completions.create(model="fallback", messages=HELLO, n=2)
    assert raised.value.body["param"] == "n"
    assert primary.request_count == 0


def test_models_lists_the_routes(sdk):
    # No route configured: the global order, named fallback (docs/clients.md §3).
    assert [m.id for m in sdk.models.list()] == ["fallback"]


def test_a_primary_stalling_before_the_first_token_fails_over(sdk, primary, secondary, settings):
    settings.FALLBACK_STREAM_FIRST_TOKEN_S = 0.3
    primary.set_fault("slow_first_token", delay_s=3, interval_s=0.05)  # keep-alives only

    with sdk.chat.completions.create(model="fallback", messages=HELLO, stream=True) as stream:
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)

    assert text == "Hello from secondary."
    assert (primary.request_count, secondary.request_count) == (1, 1)


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def test_simulated_tool_call_round_trip_streams_through_the_sdk_helper(sdk, primary):
    question = [{"role": "user", "content": "Weather in Oslo?"}]
    with sdk.chat.completions.stream(
        model="fallback", messages=question, tools=[WEATHER_TOOL]
    ) as stream:
        first = stream.get_final_completion()
    (call,) = first.choices[0].message.tool_calls
    assert first.choices[0].finish_reason == "tool_calls"
    assert json.loads(call.function.arguments) == {"city": "Oslo"}

    answer = sdk.chat.completions.create(
        model="fallback",
        messages=[
            *question,
            first.choices[0].message.model_dump(exclude_none=True, exclude={"annotations"}),
            {"role": "tool", "tool_call_id": call.id, "content": "18 C"},
        ],
        tools=[WEATHER_TOOL],
    )
    assert answer.choices[0].message.content == "Hello from primary. The tool said: 18 C"
    sent = primary.last_request["json"]["messages"]
    assert sent[1]["tool_calls"][0]["id"] == sent[2]["tool_call_id"] == call.id


@pytest.mark.parametrize(
    ("response_format", "bad_text"),
    [
        ({"type": "json_object"}, "Sure! Here is your JSON."),
        (
            {
                "type": "json_schema",
                "json_schema": {
                    "name": "greeting",
                    "strict": True,
                    "schema": {
                        "type": "object",
                        "properties": {"greeting": {"type": "string"}},
                        "required": ["greeting"],
                        "additionalProperties": False,
                    },
                },
            },
            '{"hello": "primary"}',
        ),
        (None, ""),  # no text and no tool calls
    ],
)
def test_an_answer_that_does_not_fit_the_request_fails_over(
    sdk, primary, secondary, response_format, bad_text
):
    primary.set_fault("ok", text=bad_text)
    options = {"response_format": response_format} if response_format else {}

    raw = sdk.chat.completions.with_raw_response.create(
        model="fallback", messages=[{"role": "user", "content": "Greet me in JSON."}], **options
    )

    assert raw.headers["X-Fallback-Provider"] == "secondary"
    assert raw.headers["X-Fallback-Attempts"] == "2"
    content = raw.parse().choices[0].message.content
    if response_format:
        assert json.loads(content)
    assert (primary.request_count, secondary.request_count) == (1, 1)


def test_an_image_prompt_reaches_the_simulator_as_sent(sdk, primary):
    # The test providers are openai_compatible: vision is per model, switched on here.
    Provider.objects.update(supports_images=True)
    parts = [
        {"type": "text", "text": "What is this?"},
        {
            "type": "image_url",
            "image_url": {"url": "https://example.com/cat.jpg", "detail": "high"},
        },
    ]
    answer = sdk.chat.completions.create(
        model="fallback", messages=[{"role": "user", "content": parts}]
    )
    assert answer.choices[0].message.content == "Hello from primary. I see 1 image."
    assert primary.last_request["json"]["messages"][0]["content"] == parts
