"""The upstream simulator over real HTTP: each fault mode, counters, control API."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from email.utils import formatdate
from pathlib import Path
from typing import Any

import openai
import pytest
import requests

from providers_app.simulator import (
    FAULT_MODES,
    FaultConfigError,
    SimulatorSpec,
    UpstreamSimulator,
    run_simulators,
)
from providers_app.simulator.handler import SimulatorHandler

MESSAGES = [{"role": "user", "content": "Say hello to the test suite"}]  # 6 words


def chat(
    sim: UpstreamSimulator,
    *,
    stream: bool = False,
    lazy: bool | None = None,
    timeout: float = 5,
    session: requests.Session | None = None,
    **body: Any,
) -> requests.Response:
    """POST a chat request; ``lazy`` (default: ``stream``) leaves the body unread."""
    payload: dict[str, Any] = {"model": "gpt-test", "messages": MESSAGES, **body}
    if stream:
        payload["stream"] = True
    post = session.post if session is not None else requests.post
    return post(
        f"{sim.base_url}/chat/completions",
        json=payload,
        headers={"Authorization": "Bearer sk-test"},
        timeout=timeout,
        stream=stream if lazy is None else lazy,
    )


def sse_lines(response: requests.Response) -> list[str]:
    """Non-blank lines of an SSE body: ``data: ...`` events and ``:`` comments."""
    return [line for line in response.iter_lines(decode_unicode=True) if line]


def sse_data(response: requests.Response) -> list[Any]:
    """The ``data:`` payloads, JSON-decoded, with ``[DONE]`` kept as a string."""
    events = []
    for line in sse_lines(response):
        if line.startswith("data: "):
            data = line.removeprefix("data: ")
            events.append(data if data == "[DONE]" else json.loads(data))
    return events


def control(sim: UpstreamSimulator, method: str, path: str, **kwargs: Any) -> requests.Response:
    root = sim.base_url.removesuffix("/v1")
    return requests.request(method, f"{root}{path}", timeout=5, **kwargs)


@pytest.fixture
def hanging_request(sim: UpstreamSimulator) -> Iterator[dict[str, Any]]:
    """A chat request hung on ``sim`` in a background thread; its outcome lands in the dict."""
    sim.set_fault("hang")
    outcome: dict[str, Any] = {}

    def send() -> None:
        try:
            outcome["response"] = chat(sim, timeout=10)
        except requests.RequestException as error:
            outcome["error"] = error

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    deadline = time.monotonic() + 5
    while sim.request_count == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    outcome["thread"] = thread
    yield outcome
    sim.reset()
    thread.join(timeout=5)


# --- ok ----------------------------------------------------------------------


def test_ok__answers_an_openai_chat_completion_naming_the_simulator(sim):
    response = chat(sim)

    assert response.status_code == 200
    assert response.headers["x-request-id"].startswith("req_")
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    assert body["model"] == "gpt-test"
    assert body["choices"][0]["message"] == {
        "role": "assistant",
        "content": "Hello from alpha.",
        "refusal": None,
        "annotations": [],
    }
    assert body["choices"][0]["finish_reason"] == "stop"
    usage = body["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (6, 3, 9)
    assert sim.request_count == 1
    assert sim.last_request["headers"]["Authorization"] == "Bearer sk-test"


def test_ok__configured_model_wins_over_the_requested_one():
    with UpstreamSimulator("beta", model="sim-4o") as sim:
        assert chat(sim).json()["model"] == "sim-4o"


def test_ok__custom_text_and_delay_make_a_slow_success(sim):
    sim.set_fault("ok", text="Slow but sure.", delay_s=0.3)
    started = time.monotonic()

    response = chat(sim)

    assert time.monotonic() - started >= 0.3
    assert response.json()["choices"][0]["message"]["content"] == "Slow but sure."


def test_ok__stream_follows_openai_sse_with_usage_chunk_and_done(sim):
    response = chat(sim, stream=True, stream_options={"include_usage": True})

    assert response.headers["Content-Type"].startswith("text/event-stream")
    events = sse_data(response)
    role, *contents, finish, usage_chunk, done = events
    assert role["choices"][0]["delta"]["role"] == "assistant"
    assert len(contents) >= 2
    assert "".join(c["choices"][0]["delta"]["content"] for c in contents) == "Hello from alpha."
    assert all(c["choices"][0]["finish_reason"] is None for c in contents)
    assert finish["choices"][0]["finish_reason"] == "stop"
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["completion_tokens"] == 3
    assert all(e["usage"] is None for e in [role, *contents, finish])
    assert {e["object"] for e in events[:-1]} == {"chat.completion.chunk"}
    assert done == "[DONE]"


def test_ok__stream_without_include_usage_has_no_usage_chunk(sim):
    events = sse_data(chat(sim, stream=True))

    assert events[-2]["choices"][0]["finish_reason"] == "stop"
    assert events[-1] == "[DONE]"
    assert all("usage" not in e for e in events[:-1])


def test_ok__openai_sdk_streams_from_the_simulator(sim):
    client = openai.OpenAI(base_url=sim.base_url, api_key="sk-test", max_retries=0, timeout=5)

    chunks = list(
        client.chat.completions.create(
            model="gpt-test",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
    )

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from alpha."
    assert chunks[-1].usage.total_tokens == 9
    assert sim.request_count == 1


def test_ok__openai_sdk_raises_on_a_midstream_error(sim):
    sim.set_fault("midstream_error")
    client = openai.OpenAI(base_url=sim.base_url, api_key="sk-test", max_retries=0, timeout=5)

    stream = client.chat.completions.create(model="gpt-test", messages=MESSAGES, stream=True)
    with pytest.raises(openai.APIError, match="server had an error"):
        list(stream)


# --- error statuses -------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "status", "expected"),
    [
        ({}, 500, {"type": "server_error", "code": None}),
        (
            {"status": 503},
            503,
            {
                "type": "server_error",
                "message": "The engine is currently overloaded, please try again later.",
            },
        ),
        ({"status": 400}, 400, {"type": "invalid_request_error"}),
        ({"status": 401}, 401, {"type": "invalid_request_error", "code": "invalid_api_key"}),
        (
            {"status": 400, "code": "context_length_exceeded", "message": "Too long."},
            400,
            {"code": "context_length_exceeded", "message": "Too long."},
        ),
    ],
)
def test_error__answers_an_openai_error_body(sim, options, status, expected):
    sim.set_fault("error", **options)

    response = chat(sim)

    assert response.status_code == status
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert expected.items() <= error.items()
    assert response.headers["x-request-id"]


def test_error__applies_to_streaming_requests_too(sim):
    sim.set_fault("error", status=503, retry_after="3", headers={"x-should-retry": "false"})

    response = chat(sim, stream=True)

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "3"
    assert response.headers["x-should-retry"] == "false"


# --- rate limits and quota ------------------------------------------------------


@pytest.mark.parametrize(
    "retry_after", ["2", "86400", "abc", formatdate(time.time() + 30, usegmt=True)]
)
def test_rate_limit__sends_retry_after_verbatim(sim, retry_after):
    sim.set_fault("rate_limit", retry_after=retry_after, retry_after_ms="1500")

    response = chat(sim)

    assert response.status_code == 429
    assert response.headers["Retry-After"] == retry_after
    assert response.headers["retry-after-ms"] == "1500"
    assert response.json()["error"]["code"] == "rate_limit_exceeded"


def test_rate_limit__defaults_to_one_second_and_can_omit_the_header(sim):
    sim.set_fault("rate_limit")
    assert chat(sim).headers["Retry-After"] == "1"

    sim.set_fault("rate_limit", retry_after=None)
    assert "Retry-After" not in chat(sim).headers


def test_quota__is_a_429_insufficient_quota(sim):
    sim.set_fault("quota")

    response = chat(sim)

    assert response.status_code == 429
    assert response.json()["error"]["code"] == "insufficient_quota"
    assert response.json()["error"]["type"] == "insufficient_quota"


# --- transport faults -----------------------------------------------------------


def test_hang__times_out_the_client_and_still_counts(sim):
    sim.set_fault("hang", seconds=5)

    with pytest.raises(requests.ReadTimeout):
        chat(sim, timeout=0.3)

    assert sim.request_count == 1


def test_hang__ends_with_a_closed_connection_after_seconds(sim):
    sim.set_fault("hang", seconds=0.2)

    with pytest.raises(requests.ConnectionError):
        chat(sim)


def test_hang__is_released_by_set_fault(sim, hanging_request):
    sim.set_fault("ok")
    hanging_request["thread"].join(timeout=2)

    assert isinstance(hanging_request.get("error"), requests.ConnectionError)
    assert chat(sim).status_code == 200


def test_stop__returns_within_a_second_while_a_request_hangs(sim, hanging_request):
    started = time.monotonic()
    sim.stop()

    assert time.monotonic() - started < 1
    hanging_request["thread"].join(timeout=2)
    assert "error" in hanging_request


def test_reset__drops_the_connection_without_a_response(sim):
    sim.set_fault("reset")

    with pytest.raises(requests.ConnectionError):
        chat(sim)
    assert sim.request_count == 1


@pytest.mark.parametrize("stream", [False, True])
def test_reset_mid_body__sends_headers_then_cuts_the_body(sim, stream):
    sim.set_fault("reset_mid_body")

    response = chat(sim, stream=stream, lazy=True)

    assert response.status_code == 200
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        response.content  # noqa: B018 - reading the body is the point


def test_garbage__is_a_200_json_response_that_does_not_parse(sim):
    sim.set_fault("garbage")

    response = chat(sim)

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    with pytest.raises(requests.JSONDecodeError):
        response.json()


def test_html_502__is_a_gateway_page(sim):
    sim.set_fault("html_502")

    response = chat(sim)

    assert response.status_code == 502
    assert response.headers["Content-Type"].startswith("text/html")
    assert "502 Bad Gateway" in response.text


# --- slow and broken streams ----------------------------------------------------


def test_slow_first_token__streams_keep_alives_before_the_first_chunk(sim):
    sim.set_fault("slow_first_token", delay_s=0.4, interval_s=0.1)
    started = time.monotonic()

    lines = sse_lines(chat(sim, stream=True))

    assert time.monotonic() - started >= 0.4
    first_data = next(i for i, line in enumerate(lines) if line.startswith("data:"))
    assert first_data >= 3
    assert set(lines[:first_data]) == {": keep-alive"}
    assert lines[-1] == "data: [DONE]"


def test_slow_first_token__non_streaming_pads_the_body_with_blank_lines(sim):
    sim.set_fault("slow_first_token", delay_s=0.3, interval_s=0.1)
    started = time.monotonic()

    response = chat(sim)

    assert time.monotonic() - started >= 0.3
    assert response.text.startswith("\n")
    assert response.json()["choices"][0]["message"]["content"] == "Hello from alpha."


def test_midstream_error__sends_content_then_an_error_event_without_done(sim):
    sim.set_fault("midstream_error", chunks_before=2)

    events = sse_data(chat(sim, stream=True))

    role, first, second, error = events
    assert role["choices"][0]["delta"]["role"] == "assistant"
    assert first["choices"][0]["delta"]["content"] == "Hello"
    assert second["choices"][0]["delta"]["content"] == " from"
    assert error == {
        "error": {
            "message": "The server had an error while processing your request. Sorry about that!",
            "type": "server_error",
            "param": None,
            "code": None,
        }
    }


def test_midstream_error__non_streaming_is_a_500(sim):
    sim.set_fault("midstream_error")

    response = chat(sim)

    assert response.status_code == 500
    assert response.json()["error"]["type"] == "server_error"


def test_truncate_stream__ends_without_finish_reason_or_done(sim):
    sim.set_fault("truncate_stream")

    events = sse_data(chat(sim, stream=True))

    assert "[DONE]" not in events
    assert len(events) == 4  # role + three words
    assert all(e["choices"][0]["finish_reason"] is None for e in events)


def test_truncate_stream__non_streaming_body_is_cut_short(sim):
    sim.set_fault("truncate_stream")

    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        chat(sim)


# --- prefill, stalls and refusals -------------------------------------------------

PREFILLED = [*MESSAGES, {"role": "assistant", "content": "one two"}]


def _text(events: list[Any]) -> str:
    return "".join(
        e["choices"][0]["delta"].get("content") or "" for e in events if isinstance(e, dict)
    )


def test_a_prefill_is_continued_with_the_rest_of_the_answer(sim):
    sim.set_fault("ok", text="one two three four")

    streamed = _text(sse_data(chat(sim, stream=True, messages=PREFILLED)))
    whole = chat(sim, messages=PREFILLED).json()["choices"][0]["message"]["content"]

    assert streamed == whole == " three four"


def test_a_prefill_ending_in_a_space_is_continued_after_it(sim):
    sim.set_fault("ok", text="one two three")
    messages = [*MESSAGES, {"role": "assistant", "content": "one two "}]
    assert _text(sse_data(chat(sim, stream=True, messages=messages))) == "three"


def test_stall_stream__sends_chunks_then_silence_then_the_rest(sim):
    sim.set_fault("stall_stream", chunks=2, seconds=0.3, text="a b c d")
    started = time.monotonic()

    events = sse_data(chat(sim, stream=True))

    assert time.monotonic() - started >= 0.3
    assert _text(events) == "a b c d"
    assert events[-1] == "[DONE]"


def test_stall_stream__is_released_by_a_new_fault(sim):
    sim.set_fault("stall_stream", chunks=1, seconds=30, text="a b c")
    response = chat(sim, stream=True, timeout=10)
    lines = response.iter_lines(decode_unicode=True)
    assert next(line for line in lines if '"content":"a"' in line)

    sim.set_fault("ok")

    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        list(lines)  # the stalled connection closes without the rest


def test_reject_prefill__refuses_a_trailing_assistant_message_only(sim):
    sim.set_fault("reject_prefill")

    refused = chat(sim, messages=PREFILLED)
    answered = chat(sim)

    assert refused.status_code == 400
    assert "does not support assistant message prefill" in refused.json()["error"]["message"]
    assert answered.status_code == 200


def _answer(response: requests.Response) -> str:
    assert response.status_code == 200, response.text
    return response.json()["choices"][0]["message"]["content"]


def test_vllm_dialect_continues_only_with_its_two_flags(sim):
    sim.set_continuation("vllm")
    sim.set_fault("ok", text="one two three four")
    flags = {"continue_final_message": True, "add_generation_prompt": False}

    continued = chat(sim, messages=PREFILLED, **flags)
    plain = chat(sim, messages=PREFILLED)  # the template closes the turn: a new answer
    both = chat(sim, messages=PREFILLED, continue_final_message=True)

    assert _answer(continued) == " three four"
    assert _answer(plain) == "one two three four"
    assert both.status_code == 400
    assert "add_generation_prompt" in both.json()["error"]["message"]
    assert json.loads(sim.last_request["body"]) == {
        "model": "gpt-test",
        "messages": PREFILLED,
        "continue_final_message": True,
    }


def test_prefix_dialect_continues_only_a_prefix_message(sim):
    sim.set_continuation("prefix")
    sim.set_fault("ok", text="one two three four")
    prefixed = [*MESSAGES, {"role": "assistant", "content": "one two", "prefix": True}]

    continued = chat(sim, messages=prefixed)
    refused = chat(sim, messages=PREFILLED)

    assert _answer(continued) == " three four"
    assert refused.status_code == 400
    assert "Assistant with prefix True" in refused.json()["error"]["message"]


def test_none_dialect_starts_a_new_answer_as_openai_does(sim):
    sim.set_continuation("none")
    sim.set_fault("ok", text="one two three four")
    assert _answer(chat(sim, messages=PREFILLED)) == "one two three four"


def test_an_unknown_continuation_dialect_is_refused(sim):
    with pytest.raises(ValueError, match="unknown continuation dialect"):
        sim.set_continuation("telepathy")


# --- sequences --------------------------------------------------------------------


def test_sequence__fails_twice_then_succeeds_and_repeats_the_last_step(sim):
    sim.set_fault(
        "sequence",
        steps=[
            {"mode": "error", "options": {"status": 503}},
            ("rate_limit", {"retry_after": "0"}),
            "ok",
        ],
    )

    statuses = [chat(sim).status_code for _ in range(4)]

    assert statuses == [503, 429, 200, 200]
    assert sim.request_count == 4
    assert sim.state()["sequence_index"] == 4


# --- health requests ------------------------------------------------------------


def test_models__lists_the_model_and_counts_as_health_not_chat():
    with UpstreamSimulator("beta", model="sim-4o") as sim:
        response = requests.get(f"{sim.base_url}/models", timeout=5)
        single = requests.get(f"{sim.base_url}/models/sim-4o", timeout=5)
        missing = requests.get(f"{sim.base_url}/models/other", timeout=5)

        assert response.json() == {
            "object": "list",
            "data": [
                {"id": "sim-4o", "object": "model", "created": 1700000000, "owned_by": "simulator"}
            ],
        }
        assert single.json()["id"] == "sim-4o"
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "model_not_found"
        assert (sim.health_count, sim.request_count) == (3, 0)


def test_models__honour_outage_modes_but_not_quota(sim):
    url = f"{sim.base_url}/models"
    sim.set_fault("error", status=503)
    assert requests.get(url, timeout=5).status_code == 503

    sim.set_fault("reset")
    with pytest.raises(requests.ConnectionError):
        requests.get(url, timeout=5)

    sim.set_fault("hang", seconds=5)
    with pytest.raises(requests.ReadTimeout):
        requests.get(url, timeout=0.2)

    sim.set_fault("quota")
    assert requests.get(url, timeout=5).status_code == 200
    assert (sim.health_count, sim.request_count) == (4, 0)


# --- counters, lifecycle, concurrency -------------------------------------------


def test_request_times__record_each_arrival(sim):
    before = time.time()
    chat(sim)
    chat(sim)

    times = sim.request_times
    assert len(times) == 2
    assert before <= times[0] <= times[1] <= time.time()


def test_reset__restores_ok_and_zeroes_counters(sim):
    sim.set_fault("error")
    chat(sim)
    requests.get(f"{sim.base_url}/models", timeout=5)

    sim.reset()

    assert (sim.request_count, sim.health_count, sim.request_times) == (0, 0, [])
    assert chat(sim).status_code == 200


def test_counters__are_exact_under_concurrent_clients(sim):
    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(lambda _: chat(sim).status_code, range(64)))

    assert statuses == [200] * 64
    assert sim.request_count == 64


def test_stop__closes_pooled_connections_and_start_rebinds_the_same_port(sim):
    session = requests.Session()
    assert chat(sim, session=session).status_code == 200
    port = sim.port

    sim.stop()
    with pytest.raises(requests.ConnectionError):
        chat(sim, session=session, timeout=1)

    sim.start()
    assert sim.port == port
    assert chat(sim, session=session).status_code == 200


def test_run_simulators__starts_each_spec_on_its_own_port():
    sims = run_simulators([SimulatorSpec("primary"), {"name": "secondary", "model": "m2"}])
    try:
        answers = [chat(s).json() for s in sims]
    finally:
        for s in sims:
            s.stop()

    assert [a["choices"][0]["message"]["content"] for a in answers] == [
        "Hello from primary.",
        "Hello from secondary.",
    ]
    assert answers[1]["model"] == "m2"
    assert sims[0].port != sims[1].port


def test_every_mode_has_a_behaviour():
    assert set(SimulatorHandler._FAULTS) == set(FAULT_MODES) - {"sequence"}


# --- validation and control API -------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "options", "param"),
    [
        ("explode", {}, "mode"),
        ("error", {"status": 200}, "options.status"),
        ("error", {"stauts": 500}, "options.stauts"),
        ("hang", {"seconds": -1}, "options.seconds"),
        ("sequence", {"steps": []}, "options.steps"),
        ("sequence", {"steps": [{"mode": "sequence"}]}, "options.steps[0].mode"),
    ],
)
def test_set_fault__refuses_bad_input_naming_the_field(sim, mode, options, param):
    with pytest.raises(FaultConfigError) as caught:
        sim.set_fault(mode, **options)

    assert caught.value.param == param


def test_invalid_chat_body__is_a_400_naming_the_field(sim):
    response = requests.post(
        f"{sim.base_url}/chat/completions", json={"model": "gpt-test"}, timeout=5
    )

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "messages"


def test_unknown_path__is_an_openai_404(sim):
    response = requests.post(f"{sim.base_url}/completions", json={}, timeout=5)

    assert response.status_code == 404
    assert response.json()["error"]["message"] == "Invalid URL (POST /v1/completions)"


def test_control_api__switches_faults_reports_state_and_resets(sim):
    switched = control(
        sim, "POST", "/_sim/fault", json={"mode": "error", "options": {"status": 503}}
    )
    assert switched.status_code == 200
    assert chat(sim).status_code == 503
    requests.get(f"{sim.base_url}/models", timeout=5)

    state = control(sim, "GET", "/_sim/state").json()

    assert state["name"] == "alpha"
    assert state["mode"] == "error"
    assert state["options"]["status"] == 503
    assert (state["request_count"], state["health_count"]) == (1, 1)
    reset = control(sim, "POST", "/_sim/reset").json()
    assert (reset["mode"], reset["request_count"], reset["health_count"]) == ("ok", 0, 0)
    assert control(sim, "GET", "/_sim").headers["Content-Type"].startswith("text/html")
    assert sim.request_count == 0  # control requests are never counted


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"mode": "nope"}, "mode"),
        ({"options": {}}, "mode"),
        ({"mode": "error", "options": {"status": "500"}}, "options.status"),
        ({"mode": "error", "options": [1]}, "options"),
        ({"mode": "ok", "colour": "red"}, "colour"),
        ([1, 2], "body"),
    ],
)
def test_control_api__refuses_bad_faults_with_a_400_naming_the_field(sim, body, param):
    response = control(sim, "POST", "/_sim/fault", json=body)

    assert response.status_code == 400
    assert response.json()["error"]["param"] == param
    assert sim.fault.mode == "ok"


def test_import__pulls_in_no_django():
    code = (
        "import sys, providers_app.simulator; "
        "sys.exit(any(m.split('.')[0] == 'django' for m in sys.modules))"
    )
    project_root = Path(__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, "-c", code], check=False, timeout=30, cwd=project_root)

    assert result.returncode == 0
