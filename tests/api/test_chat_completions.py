"""POST /v1/chat/completions through the Django test client: statuses, shapes, mapping."""

import io
import json
from datetime import timedelta
from unittest import mock

import pytest
from django.db import connections
from django.utils import timezone

from providers_app.engine import route_run, streams
from providers_app.models import BreakerState, ClientKey
from providers_app.services.client_keys import (
    client_key_authenticate as authenticate,
)
from providers_app.services.client_keys import client_key_create, client_key_revoke

URL = "/v1/chat/completions"
HELLO = [{"role": "user", "content": "Say hello."}]


def close_as_the_server_would(response) -> None:
    """Close a response as the WSGI server does when the client goes away.

    Closing fires `request_finished`, whose connection cleanup would close the
    test's own database connection (it sits inside the test transaction, which
    looks like a leaked one); Django's test client avoids it the same way.
    """
    with mock.patch.object(type(connections["default"]), "close_if_unusable_or_obsolete"):
        response.close()


def post(client, body, *, headers=None, raw=False):
    data = body if raw else json.dumps(body)
    return client.post(URL, data, content_type="application/json", headers=headers or {})


def error_of(response, status):
    """The OpenAI-shaped error body, after checking the status and the shape."""
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert {"type", "message", "param", "code"} <= set(error)
    assert isinstance(error["message"], str)
    assert error["message"]
    return error


# ---------------------------------------------------------------------------
# 400: malformed requests name the field
# ---------------------------------------------------------------------------

MALFORMED = [
    pytest.param({"model": "x"}, "messages", id="missing-messages"),
    pytest.param({"messages": None}, "messages", id="null-messages"),
    pytest.param({"messages": []}, "messages", id="empty-messages"),
    pytest.param({"messages": "hi"}, "messages", id="messages-not-a-list"),
    pytest.param({"messages": ["hi"]}, "messages[0]", id="message-not-an-object"),
    pytest.param({"messages": [{"content": "hi"}]}, "messages[0].role", id="missing-role"),
    pytest.param(
        {"messages": [*HELLO, {"role": "robot", "content": "x"}]}, "messages[1].role", id="bad-role"
    ),
    pytest.param({"messages": [{"role": "user"}]}, "messages[0].content", id="missing-content"),
    pytest.param(
        {"messages": [{"role": "user", "content": 42}]}, "messages[0].content", id="int-content"
    ),
    pytest.param(
        {"messages": [{"role": "user", "content": None}]}, "messages[0].content", id="null-content"
    ),
    pytest.param(
        {"messages": [{"role": "user", "content": [{"type": "text", "text": 1}]}]},
        "messages[0].content[0].text",
        id="text-part-not-a-string",
    ),
    pytest.param(
        {"messages": [{"role": "user", "content": ["hi"]}]},
        "messages[0].content[0]",
        id="part-not-an-object",
    ),
    pytest.param({**{"messages": HELLO}, "temperature": 2.5}, "temperature", id="temperature-high"),
    pytest.param({**{"messages": HELLO}, "temperature": -0.1}, "temperature", id="temperature-low"),
    pytest.param(
        {**{"messages": HELLO}, "temperature": "hot"}, "temperature", id="temperature-str"
    ),
    pytest.param(
        {**{"messages": HELLO}, "temperature": True}, "temperature", id="temperature-bool"
    ),
    pytest.param({**{"messages": HELLO}, "top_p": 1.5}, "top_p", id="top-p-high"),
    pytest.param({**{"messages": HELLO}, "max_tokens": 0}, "max_tokens", id="max-tokens-zero"),
    pytest.param({**{"messages": HELLO}, "max_tokens": 1.5}, "max_tokens", id="max-tokens-float"),
    pytest.param({**{"messages": HELLO}, "max_tokens": "10"}, "max_tokens", id="max-tokens-str"),
    pytest.param(
        {**{"messages": HELLO}, "max_completion_tokens": -1},
        "max_completion_tokens",
        id="max-completion-tokens-negative",
    ),
    pytest.param(
        {**{"messages": HELLO}, "max_tokens": 10, "max_completion_tokens": 20},
        "max_completion_tokens",
        id="max-tokens-disagree",
    ),
    pytest.param({**{"messages": HELLO}, "stop": ["a"] * 5}, "stop", id="too-many-stops"),
    pytest.param({**{"messages": HELLO}, "stop": [1]}, "stop", id="stop-not-a-string"),
    pytest.param({**{"messages": HELLO}, "stop": ""}, "stop", id="empty-stop"),
    pytest.param({**{"messages": HELLO}, "stream": "yes"}, "stream", id="stream-not-bool"),
    pytest.param({**{"messages": HELLO}, "stream_options": 1}, "stream_options", id="options-int"),
    pytest.param(
        {**{"messages": HELLO}, "stream": True, "stream_options": {"include_usage": "y"}},
        "stream_options.include_usage",
        id="include-usage-not-bool",
    ),
    pytest.param({**{"messages": HELLO}, "model": 5}, "model", id="model-not-a-string"),
    pytest.param({**{"messages": HELLO}, "user": ["u"]}, "user", id="user-not-a-string"),
    pytest.param({**{"messages": HELLO}, "n": 0}, "n", id="n-zero"),
    pytest.param({**{"messages": HELLO}, "seed": "s"}, "seed", id="seed-not-an-int"),
    pytest.param(
        {**{"messages": HELLO}, "presence_penalty": 3}, "presence_penalty", id="penalty-range"
    ),
]


@pytest.mark.parametrize(("body", "param"), MALFORMED)
def test_malformed_request_is_a_400_naming_the_field(client, auth, providers, primary, body, param):
    error = error_of(post(client, body, headers=auth), 400)

    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert primary.request_count == 0


UNSUPPORTED = [
    pytest.param({"n": 2}, "n", id="n"),
    pytest.param({"functions": [{"name": "f"}]}, "functions", id="functions"),
    pytest.param({"logprobs": True}, "logprobs", id="logprobs"),
    pytest.param({"top_logprobs": 3}, "top_logprobs", id="top-logprobs"),
    pytest.param({"modalities": ["text", "audio"]}, "modalities", id="audio-out"),
    pytest.param({"logit_bias": {"50256": -100}}, "logit_bias", id="logit-bias"),
    pytest.param({"tools": [{"type": "web_search"}]}, "tools[0].type", id="non-function-tool"),
    pytest.param(
        {"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]},
        "messages[0].content[0].type",
        id="audio-in",
    ),
    pytest.param(
        {
            "messages": [
                {
                    "role": "system",
                    "content": [{"type": "image_url", "image_url": {"url": "https://x/a.png"}}],
                }
            ]
        },
        "messages[0].content[0].type",
        id="image-outside-user-message",
    ),
]
# The fields of tools, structured output and images are carried; malformed ones
# are refused before any upstream call, naming the field.
MALFORMED = [
    pytest.param(
        {"tools": [{"type": "function", "function": {"name": "bad name"}}]},
        "tools[0].function.name",
        id="tool-name",
    ),
    pytest.param({"tool_choice": "required"}, "tool_choice", id="tool-choice-without-tools"),
    pytest.param({"response_format": {"type": "xml"}}, "response_format.type", id="format"),
    pytest.param(
        {"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
        "response_format.json_schema.schema",
        id="json-schema-without-schema",
    ),
    pytest.param(
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
        "messages[0].content[0].image_url.url",
        id="image-without-url",
    ),
    pytest.param(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,%%%"}}
                    ],
                }
            ]
        },
        "messages[0].content[0].image_url.url",
        id="image-bad-base64",
    ),
    pytest.param(
        {"messages": [{"role": "tool", "content": "42", "tool_call_id": "c1"}]},
        "messages[0].tool_call_id",
        id="tool-result-for-no-call",
    ),
    pytest.param(
        {"messages": [{"role": "assistant", "content": None, "tool_calls": [{"id": "c1"}]}]},
        "messages[0].tool_calls[0].function.name",
        id="assistant-tool-call-without-function",
    ),
]


@pytest.mark.parametrize(("fields", "param"), MALFORMED)
def test_malformed_tool_format_or_image_field_is_refused_naming_it(
    client, auth, providers, primary, fields, param
):
    error = error_of(post(client, {"messages": HELLO, **fields}, headers=auth), 400)

    assert error["param"] == param
    assert primary.request_count == 0


@pytest.mark.parametrize(("fields", "param"), UNSUPPORTED)
def test_unsupported_feature_is_refused_naming_the_field(
    client, auth, providers, primary, fields, param
):
    error = error_of(post(client, {"messages": HELLO, **fields}, headers=auth), 400)

    assert error["param"] == param
    assert error["code"] == "unsupported_parameter"
    assert primary.request_count == 0


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"{not json", id="invalid-json"),
        pytest.param(b"", id="empty"),
        pytest.param(b"[1, 2]", id="array"),
        pytest.param(b'"text"', id="string"),
        pytest.param(b"\xff\xfe\x00garbage", id="not-utf8"),
        pytest.param(b'{"messages": [], "temperature": NaN}', id="nan"),
        pytest.param(b"[" * 100_000 + b"]" * 100_000, id="deeply-nested"),
    ],
)
def test_a_body_that_is_not_a_json_object_is_a_400(client, auth, body):
    error = error_of(post(client, body, headers=auth, raw=True), 400)
    assert error["param"] is None


# ---------------------------------------------------------------------------
# What is accepted, and how it reaches the upstream
# ---------------------------------------------------------------------------


def test_openai_message_shapes_are_mapped_for_the_upstream(client, auth, providers, primary):
    body = {
        "model": "whatever",
        "messages": [
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "name": "ann", "content": [
                {"type": "text", "text": "Line one."},
                {"type": "text", "text": "Line two."},
            ]},
            {"role": "assistant", "content": "Noted."},
            {"role": "user", "content": "Go."},
        ],
        "max_completion_tokens": 50,
        "temperature": 0.2,
        "top_p": 0.9,
        "stop": "END",
        "user": "user-42",
        # Harmless, ignored:
        "seed": 7,
        "presence_penalty": 0.5,
        "tools": [],
        "tool_choice": "none",
        "response_format": {"type": "text"},
        "metadata": {"a": "b"},
        "store": False,
    }  # fmt: skip

    response = post(client, body, headers=auth)

    assert response.status_code == 200, response.content
    sent = primary.last_request["json"]
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        # Parts reach an OpenAI-format upstream as parts: nothing is re-shaped.
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Line one."},
                {"type": "text", "text": "Line two."},
            ],
        },
        {"role": "assistant", "content": "Noted."},
        {"role": "user", "content": "Go."},
    ]
    assert sent["model"] == "gpt-primary"  # the request's model does not pick the upstream
    assert sent["temperature"] == 0.2
    assert sent["top_p"] == 0.9
    assert sent["stop"] == ["END"]
    assert sent["user"] == "user-42"
    assert 50 in (sent.get("max_tokens"), sent.get("max_completion_tokens"))
    assert not {"seed", "presence_penalty", "tools", "tool_choice", "metadata"} & set(sent)


def test_completion_body_is_openai_shaped(client, auth, providers, primary):
    response = post(client, {"model": "fallback", "messages": HELLO}, headers=auth)

    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    assert isinstance(body["created"], int)
    assert body["model"] == "gpt-primary"
    assert body["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello from primary.", "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ]
    assert body["usage"]["completion_tokens"] == 3
    assert response["X-Fallback-Provider"] == "primary"
    assert response["X-Fallback-Attempts"] == "1"


def test_a_callers_request_id_is_used_and_echoed(client, auth, providers):
    headers = {**auth, "X-Request-Id": "trace-123"}
    response = post(client, {"messages": HELLO}, headers=headers)
    assert response["X-Request-Id"] == "trace-123"
    assert response.json()["id"] == "chatcmpl-trace-123"


def test_a_malformed_request_id_is_replaced(client, auth, providers):
    response = post(client, {"messages": HELLO}, headers={**auth, "X-Request-Id": "a b\x7f"})
    assert response["X-Request-Id"] != "a b\x7f"
    assert len(response["X-Request-Id"]) == 32


def test_stream_without_usage_has_no_usage_chunk(client, auth, providers):
    response = post(client, {"messages": HELLO, "stream": True}, headers=auth)

    assert response["Content-Type"].startswith("text/event-stream")
    events = b"".join(response.streaming_content).decode().strip().split("\n\n")
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(e.removeprefix("data: ")) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all("usage" not in c for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_mid_stream_failure_ends_with_a_partial_error_and_no_done(
    client, auth, providers, primary, secondary
):
    primary.set_fault("midstream_error", chunks_before=1)

    response = post(client, {"messages": HELLO, "stream": True}, headers=auth)

    events = b"".join(response.streaming_content).decode().strip().split("\n\n")
    assert "data: [DONE]" not in events
    last = json.loads(events[-1].removeprefix("data: "))
    assert last["error"]["partial"] is True
    assert last["error"]["provider"] == "primary"
    assert secondary.request_count == 0


@pytest.fixture
def released(monkeypatch):
    """The permits the engine hands back unused (a client that went away)."""
    calls = []
    real = streams.breaker_release

    def spy(*, permit):
        calls.append(permit)
        real(permit=permit)

    monkeypatch.setattr(streams, "breaker_release", spy)
    monkeypatch.setattr(route_run, "breaker_release", spy)
    return calls


def test_a_client_gone_before_reading_abandons_the_stream(client, auth, providers, released):
    response = post(client, {"messages": HELLO, "stream": True}, headers=auth)

    close_as_the_server_would(response)  # the client disconnected

    assert len(released) == 1


def test_a_client_gone_mid_stream_abandons_it_without_blaming_the_provider(
    client, auth, providers, primary, released
):
    primary.set_fault("ok", chunk_delay_s=0.01)
    response = post(client, {"messages": HELLO, "stream": True}, headers=auth)
    chunks = iter(response.streaming_content)
    next(chunks), next(chunks)  # the role chunk and the first words

    close_as_the_server_would(response)

    assert len(released) == 1
    assert BreakerState.objects.get(provider=providers[0]).consecutive_failures == 0
    assert post(client, {"messages": HELLO}, headers=auth).status_code == 200


def test_a_finished_stream_releases_nothing(client, auth, providers, released):
    response = post(client, {"messages": HELLO, "stream": True}, headers=auth)
    b"".join(response.streaming_content)

    close_as_the_server_would(response)

    assert released == []


# ---------------------------------------------------------------------------
# 401
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("authorization", "code"),
    [
        (None, "missing_api_key"),
        ("Bearer", "missing_api_key"),
        ("Basic dXNlcjpwYXNz", "missing_api_key"),
        ("Bearer fbk_not-a-real-key", "invalid_api_key"),
    ],
)
def test_missing_or_unknown_key_is_a_401(client, providers, primary, authorization, code):
    headers = {"Authorization": authorization} if authorization else {}

    response = post(client, {"messages": HELLO}, headers=headers)

    error = error_of(response, 401)
    assert error["code"] == code
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert primary.request_count == 0


def test_revoked_key_is_a_401(client, providers, primary):
    created = client_key_create(name="old-bot")
    client_key_revoke(client_key=created.client_key)

    response = post(
        client, {"messages": HELLO}, headers={"Authorization": f"Bearer {created.raw_key}"}
    )

    assert error_of(response, 401)["code"] == "revoked_api_key"
    assert primary.request_count == 0


def test_auth_comes_before_reading_the_body(client):
    error = error_of(post(client, b"{broken", raw=True), 401)
    assert error["code"] == "missing_api_key"


# ---------------------------------------------------------------------------
# 405, 404
# ---------------------------------------------------------------------------


def test_wrong_method_is_a_json_405(client, auth):
    response = client.get(URL, headers=auth)

    error = error_of(response, 405)
    assert error["code"] == "method_not_allowed"
    assert response["Allow"] == "POST"


def test_unknown_v1_path_is_a_json_404(client, auth):
    error = error_of(client.post("/v1/embeddings", headers=auth), 404)
    assert error["code"] == "unknown_url"


# ---------------------------------------------------------------------------
# 413
# ---------------------------------------------------------------------------


@pytest.fixture
def small_limit(settings):
    settings.FALLBACK_MAX_REQUEST_BYTES = 1000
    return 1000


def test_a_body_over_the_limit_is_a_413(client, auth, providers, primary, small_limit):
    body = {"messages": [{"role": "user", "content": "x" * small_limit}]}

    error = error_of(post(client, body, headers=auth), 413)

    assert error["type"] == "request_too_large"
    assert primary.request_count == 0


def test_a_body_at_the_limit_is_accepted(client, auth, providers, small_limit):
    body = {"messages": [{"role": "user", "content": ""}]}
    padding = small_limit - len(json.dumps(body))
    body["messages"][0]["content"] = "x" * padding
    assert len(json.dumps(body)) == small_limit

    assert post(client, body, headers=auth).status_code == 200


class CountingStream(io.BytesIO):
    """A wsgi.input that remembers how much was read from it."""

    bytes_read = 0

    def read(self, size=-1):
        data = super().read(size)
        self.bytes_read += len(data)
        return data


def test_a_chunked_body_over_the_limit_is_read_only_to_the_limit(client, auth, small_limit):
    stream = CountingStream(b"x" * (small_limit * 50))

    response = client.generic(
        "POST",
        URL,
        headers=auth,
        # No CONTENT_LENGTH: the server de-chunked the body and says the input ends.
        **{"wsgi.input": stream, "wsgi.input_terminated": True},
    )

    assert error_of(response, 413)["code"] == "request_too_large"
    assert stream.bytes_read == small_limit + 1


def test_a_chunked_body_under_the_limit_is_read(client, auth, providers, small_limit):
    stream = CountingStream(json.dumps({"messages": HELLO}).encode())

    response = client.generic(
        "POST",
        URL,
        headers=auth,
        **{"wsgi.input": stream, "wsgi.input_terminated": True, "CONTENT_TYPE": "application/json"},
    )

    assert response.status_code == 200, response.content


def test_a_declared_length_over_the_limit_is_refused_before_reading(client, auth, small_limit):
    stream = CountingStream(b"{}")

    response = client.generic(
        "POST",
        URL,
        headers=auth,
        **{"wsgi.input": stream, "CONTENT_LENGTH": str(small_limit + 1)},
    )

    assert error_of(response, 413)["code"] == "request_too_large"
    assert stream.bytes_read == 0


# ---------------------------------------------------------------------------
# 503 and the engine's fail-fast outcomes
# ---------------------------------------------------------------------------


def test_all_failed_is_a_503_listing_each_provider_without_secrets(
    client, auth, providers, primary, secondary, monkeypatch
):
    monkeypatch.setenv("SIM_API_KEY", "sk-live-abcdefghijklmnopqrstuvwxyz123456")
    providers[0].api_key_env = "SIM_API_KEY"
    providers[0].save()
    primary.set_fault("error", status=500)
    secondary.set_fault("quota")

    response = post(client, {"messages": HELLO}, headers=auth)

    error = error_of(response, 503)
    assert error["type"] == "all_providers_failed"
    assert response["Retry-After"] == "1"
    assert [(p["provider"], p["reason"], p["status_code"]) for p in error["providers"]] == [
        ("primary", "server_error", 500),
        ("secondary", "quota_exhausted", 429),
    ]
    text = response.content.decode()
    assert "sk-live" not in text
    assert str(primary.port) not in text
    assert str(secondary.port) not in text


def test_retry_after_is_the_soonest_a_cooling_provider_may_be_tried(
    client, auth, providers, primary, secondary
):
    primary.set_fault("rate_limit", retry_after="20")
    secondary.set_fault("rate_limit", retry_after="40")
    error_of(post(client, {"messages": HELLO}, headers=auth), 503)

    response = post(client, {"messages": HELLO}, headers=auth)  # both now cooling down

    error = error_of(response, 503)
    assert [p["reason"] for p in error["providers"]] == ["cooldown", "cooldown"]
    assert 15 <= int(response["Retry-After"]) <= 20
    assert (primary.request_count, secondary.request_count) == (1, 1)


def test_no_enabled_provider_is_a_503(client, auth):
    error = error_of(post(client, {"messages": HELLO}, headers=auth), 503)
    assert error["providers"] == []


@pytest.mark.parametrize(
    ("fault", "status", "error_type", "code"),
    [
        pytest.param(
            {"status": 400, "message": "Unknown parameter 'x'.", "type": "invalid_request_error"},
            400,
            "invalid_request_error",
            "upstream_invalid_request",
            id="invalid-request",
        ),
        pytest.param(
            {"status": 400, "message": "Filtered.", "code": "content_filter"},
            400,
            "content_filter",
            "content_filter",
            id="content-filter",
        ),
        pytest.param(
            {"status": 413, "message": "Request too large."},
            413,
            "request_too_large",
            "request_too_large",
            id="request-too-large",
        ),
    ],
)
def test_fail_fast_outcomes_map_to_client_errors(
    client, auth, providers, primary, secondary, fault, status, error_type, code
):
    primary.set_fault("error", **fault)

    error = error_of(post(client, {"messages": HELLO}, headers=auth), status)

    assert (error["type"], error["code"]) == (error_type, code)
    assert error["provider"] == "primary"
    assert secondary.request_count == 0  # the caller's request is wrong everywhere


# ---------------------------------------------------------------------------
# Client keys: one indexed query, `last_used_at` at most once a minute
# ---------------------------------------------------------------------------


def test_a_key_check_is_one_query_and_records_use_once_a_minute(
    client, api_key, django_assert_num_queries
):
    key = ClientKey.objects.get()
    assert key.last_used_at is None

    headers = {"Authorization": f"Bearer {api_key}"}
    # The key lookup, its first use recorded; the list is the routing snapshot:
    # its version, then (first read in this process) providers and routes.
    with django_assert_num_queries(5):
        assert client.get("/v1/models", headers=headers).status_code == 200
    key.refresh_from_db()
    first_use = key.last_used_at
    assert first_use is not None

    with django_assert_num_queries(2):  # the key lookup and the version: no write
        client.get("/v1/models", headers=headers)
    key.refresh_from_db()
    assert key.last_used_at == first_use

    ClientKey.objects.update(last_used_at=timezone.now() - timedelta(seconds=61))
    client.get("/v1/models", headers=headers)
    key.refresh_from_db()
    assert key.last_used_at > first_use


def test_a_key_check_is_one_indexed_query(api_key, django_assert_num_queries):
    authenticate(raw_key=api_key)  # records the first use
    with django_assert_num_queries(1) as captured:
        key = authenticate(raw_key=api_key)
    assert key.name == "test-bot"
    assert "key_hash" in captured.captured_queries[0]["sql"]  # the unique (indexed) digest


def test_a_5000_deep_json_answer_fails_over_through_the_api(client, auth, providers, primary):
    """An upstream body that makes the JSON parser recurse is a provider failure, not a 500."""
    primary.set_fault("garbage", body="[" * 5000 + "]" * 5000)
    response = client.post(
        "/v1/chat/completions",
        data={"model": "fallback", "messages": [{"role": "user", "content": "Hi"}]},
        content_type="application/json",
        headers=auth,
    )
    assert response.status_code == 200
    assert response["X-Fallback-Provider"] == "secondary"
    from providers_app.models import BreakerState

    assert BreakerState.objects.get(pk=providers[0].pk).consecutive_failures == 1
