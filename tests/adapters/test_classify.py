"""Classification beyond the recorded fixtures: status defaults, body traps, exceptions."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import requests
import responses
import urllib3.exceptions

from providers_app.adapters import ChatRequest, Message, ProviderError
from providers_app.adapters.classify import (
    classify_exception,
    classify_response,
    classify_stream_error,
    parse_error_body,
)
from providers_app.adapters.wordings import GAP, MEANINGS, normalise_text

REQUEST = ChatRequest(messages=(Message("user", "hi"),))


def _classify(status: int | None, body, headers=None) -> ProviderError:
    return classify_response(provider="p", status=status, headers=headers or {}, body=body)


@pytest.mark.parametrize(
    ("status", "category"),
    [
        (400, "invalid_request"),
        (401, "auth"),
        (402, "quota_exhausted"),
        (403, "permission"),
        (404, "not_found"),
        (408, "timeout"),
        (409, "server_error"),
        (413, "request_too_large"),
        (418, "invalid_request"),
        (422, "invalid_request"),
        (429, "rate_limit"),
        (498, "overloaded"),
        (500, "server_error"),
        (502, "server_error"),
        (503, "overloaded"),
        (504, "server_error"),
        (524, "server_error"),
        (529, "overloaded"),
        (599, "server_error"),
    ],
)
def test_status_defaults_when_the_body_says_nothing(status: int, category: str) -> None:
    error = _classify(status, b"")
    assert error.category == category
    assert error.status_code == status
    assert error.message == f"HTTP {status} with an empty body"


@pytest.mark.parametrize(
    ("status", "body", "category"),
    [
        # The four traps of docs/vendors.md: the body beats the status.
        (
            429,
            {"error": {"type": "insufficient_quota", "code": "insufficient_quota"}},
            "quota_exhausted",
        ),
        (
            400,
            {"error": {"message": "Your credit balance is too low to access"}},
            "quota_exhausted",
        ),
        (
            400,
            {
                "error": {
                    "status": "INVALID_ARGUMENT",
                    "details": [
                        {
                            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                            "reason": "API_KEY_INVALID",
                        }
                    ],
                }
            },
            "auth",
        ),
        (
            403,
            {"error": {"message": "`inputs` tokens + `max_new_tokens` must be <= 4097"}},
            "context_length",
        ),
        # ...and the other body patterns.
        (
            429,
            {"error": {"status": "RESOURCE_EXHAUSTED", "message": "Quota exceeded, limit: 0"}},
            "quota_exhausted",
        ),
        (400, {"error": "input exceeds maximum context length of 8192"}, "context_length"),
        (
            400,
            {"error": {"message": "Too long.", "code": "context_length_exceeded"}},
            "context_length",
        ),
        (429, {"error": {"status": "RESOURCE_EXHAUSTED", "message": "limit: 0.5/s"}}, "rate_limit"),
        (
            403,
            {"error": {"code": 403, "message": "flagged", "metadata": {"reasons": ["violence"]}}},
            "content_filter",
        ),
        (400, {"error": {"code": "content_policy_violation", "message": "no"}}, "content_filter"),
        (400, {"error": {"type": "billing_error", "message": "pay"}}, "quota_exhausted"),
        (429, {"message": "Service tier capacity exceeded for this model."}, "rate_limit"),
        (401, {"error": {"type": "invalid_request_error", "code": "invalid_api_key"}}, "auth"),
    ],
)
def test_body_patterns_beat_the_status(status: int, body, category: str) -> None:
    assert _classify(status, json.dumps(body).encode()).category == category


def test_status_beats_a_generic_body_type_for_401() -> None:
    body = {
        "error": {
            "message": "You must be a member of an organization",
            "type": "invalid_request_error",
        }
    }
    assert _classify(401, body).category == "auth"


def test_a_huge_hint_on_a_429_is_a_quota_wall() -> None:
    error = _classify(429, b"{}", headers={"Retry-After": "3600"})
    assert error.category == "quota_exhausted"
    assert error.retry_after == 120.0


def test_headers_feed_hint_should_retry_and_request_id() -> None:
    headers = {"retry-after": "3", "x-should-retry": "false", "apim-request-id": "abc"}
    error = _classify(429, b"{}", headers=headers)
    assert (error.retry_after, error.should_retry, error.request_id) == (3.0, False, "abc")


def test_request_id_falls_back_to_the_body() -> None:
    body = {"type": "error", "error": {"type": "api_error"}, "request_id": "req_body"}
    assert _classify(500, body).request_id == "req_body"


@pytest.mark.parametrize(
    ("payload", "category", "status"),
    [
        ({"error": {"type": "overloaded_error", "message": "Overloaded"}}, "overloaded", None),
        (
            {"error": {"code": 429, "message": "slow", "status": "RESOURCE_EXHAUSTED"}},
            "rate_limit",
            429,
        ),
        (
            {"error": {"message": "boom", "type": "server_error", "code": None}},
            "server_error",
            None,
        ),
        ({"error": {"message": "bad", "code": 400}}, "invalid_request", 400),
        ({"error": "runner crashed"}, "server_error", None),
        (
            {"error": {"code": "server_error", "message": "Provider disconnected"}},
            "server_error",
            None,
        ),
    ],
)
def test_errors_inside_a_200_stream_use_the_inner_error(payload, category: str, status) -> None:
    error = classify_stream_error(provider="p", payload=payload, request_id="req_1")
    assert (error.category, error.status_code, error.request_id) == (category, status, "req_1")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"detail": "Unauthorized"}', "Unauthorized"),
        (
            b'{"detail": [{"loc": ["body", "model"], "msg": "Field required"}]}',
            "body.model: Field required",
        ),
        (b'{"object": "error", "message": "flat", "code": 400}', "flat"),
        (
            b"<html><title>504 Gateway Time-out</title></html>",
            "non-JSON error page: 504 Gateway Time-out",
        ),
        (b"upstream connect error", "upstream connect error"),
        (b'[{"error": {"message": "in an array"}}]', "in an array"),
        (b"\xff\xfe not utf-8", "\ufffd\ufffd not utf-8"),
    ],
)
def test_error_bodies_of_every_shape_yield_a_message(body: bytes, message: str) -> None:
    assert parse_error_body(body).message == message


def test_a_2xx_carrying_an_error_object_is_classified(make_adapter) -> None:
    adapter = make_adapter("openai_compatible")
    with responses.RequestsMock() as mock:
        mock.add(
            responses.POST,
            re.compile(".*"),
            json={"error": {"message": "Rate limit exceeded", "code": 429}},
        )
        with pytest.raises(ProviderError) as caught:
            adapter.complete(REQUEST, timeout=5)
    assert caught.value.category == "rate_limit"


def test_redirects_are_not_followed(make_adapter) -> None:
    """Following one would send the api-key header to whatever host it names."""
    adapter = make_adapter("azure_openai")
    with responses.RequestsMock() as mock:
        mock.add(
            responses.POST,
            re.compile(".*"),
            status=302,
            headers={"Location": "https://elsewhere.example/steal"},
        )
        with pytest.raises(ProviderError) as caught:
            adapter.complete(REQUEST, timeout=5)
        assert len(mock.calls) == 1
    assert caught.value.category == "not_found"


@pytest.mark.parametrize(
    ("exc", "category"),
    [
        (requests.ConnectTimeout("connect"), "timeout"),
        (requests.ReadTimeout("read"), "timeout"),
        (urllib3.exceptions.ReadTimeoutError(None, "/x", "read timed out"), "timeout"),
        (requests.ConnectionError(ConnectionRefusedError(111, "refused")), "transport"),
        (
            urllib3.exceptions.ProtocolError("broken", ConnectionResetError(104, "reset")),
            "transport",
        ),
        (requests.exceptions.ChunkedEncodingError("bad chunk"), "transport"),
        (requests.exceptions.SSLError("handshake"), "transport"),
        (requests.exceptions.MissingSchema("no scheme"), "not_found"),
        (requests.exceptions.ContentDecodingError("gzip"), "malformed_response"),
    ],
)
def test_transport_exceptions(exc: BaseException, category: str) -> None:
    assert classify_exception(exc, provider="p").category == category


def test_transport_messages_name_the_root_cause_without_hosts() -> None:
    exc = requests.ConnectionError(
        urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError(104, "x"))
    )
    assert classify_exception(exc, provider="p").message == "connection reset by peer"


def test_missing_key_fails_without_a_request(make_adapter) -> None:
    adapter = make_adapter("anthropic", api_key=None)
    with responses.RequestsMock() as mock:
        with pytest.raises(ProviderError) as caught:
            adapter.complete(REQUEST, timeout=5)
        assert len(mock.calls) == 0
    assert caught.value.category == "auth"


def test_stream_ending_with_a_content_filter_is_an_error_not_a_success(make_adapter) -> None:
    chunks = [
        {"choices": [{"index": 0, "delta": {"content": "Once"}}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "content_filter"}]},
    ]
    body = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
    adapter = make_adapter("azure_openai")
    with responses.RequestsMock() as mock:
        mock.add(responses.POST, re.compile(".*"), body=body, content_type="text/event-stream")
        stream = adapter.stream(REQUEST, timeout=5, first_token_timeout=5, idle_timeout=5)
        assert next(stream).text == "Once"
        with pytest.raises(ProviderError) as caught:
            next(stream)
    error = caught.value
    assert (error.category, error.output_produced, error.partial_text) == (
        "content_filter",
        True,
        "Once",
    )


def test_openai_refusal_is_a_content_filter_outcome(make_adapter) -> None:
    body = {
        "model": "gpt-4o",
        "choices": [
            {
                "message": {"content": None, "refusal": "I can't help with that."},
                "finish_reason": "stop",
            }
        ],
    }
    adapter = make_adapter("openai")
    with responses.RequestsMock() as mock:
        mock.add(responses.POST, re.compile(".*"), json=body)
        with pytest.raises(ProviderError) as caught:
            adapter.complete(REQUEST, timeout=5)
    assert caught.value.category == "content_filter"


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        ("openai", {"id": "x", "choices": []}),
        ("anthropic", {"type": "message", "content": None}),
        ("gemini", {"usageMetadata": {}}),
        ("ollama", {"model": "llama3.2", "done": True}),
        ("openai", ["not", "an", "object"]),
    ],
)
def test_a_2xx_without_the_expected_shape_is_malformed(make_adapter, kind: str, body) -> None:
    adapter = make_adapter(kind)
    with responses.RequestsMock() as mock:
        mock.add(responses.POST, re.compile(".*"), json=body)
        with pytest.raises(ProviderError) as caught:
            adapter.complete(REQUEST, timeout=5)
    assert caught.value.category == "malformed_response"


def test_a_stream_event_that_is_not_json_is_malformed(make_adapter) -> None:
    adapter = make_adapter("openai")
    with responses.RequestsMock() as mock:
        mock.add(
            responses.POST,
            re.compile(".*"),
            body="data: {not json}\n\n",
            content_type="text/event-stream",
        )
        with pytest.raises(ProviderError) as caught:
            list(adapter.stream(REQUEST, timeout=5, first_token_timeout=5, idle_timeout=5))
    assert caught.value.category == "malformed_response"


def test_a_stream_answered_with_one_json_body_is_replayed_as_deltas(make_adapter) -> None:
    """Some servers and proxies ignore stream=true; their answer is still an answer."""
    completion = {
        "model": "m",
        "choices": [{"message": {"content": "Lima."}, "finish_reason": "length"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2},
    }
    adapter = make_adapter("openai_compatible")
    with responses.RequestsMock() as mock:
        mock.add(responses.POST, re.compile(".*"), json=completion)
        deltas = list(adapter.stream(REQUEST, timeout=5, first_token_timeout=5, idle_timeout=5))
    assert [d.text for d in deltas] == ["Lima.", ""]
    assert (deltas[-1].finish_reason, deltas[-1].output_tokens) == ("length", 2)


def test_a_stream_answered_with_a_json_error_in_a_200_is_classified(make_adapter) -> None:
    adapter = make_adapter("openai_compatible")
    with responses.RequestsMock() as mock:
        mock.add(
            responses.POST,
            re.compile(".*"),
            json={"error": {"message": "No allowed providers are available", "code": 503}},
        )
        with pytest.raises(ProviderError) as caught:
            list(adapter.stream(REQUEST, timeout=5, first_token_timeout=5, idle_timeout=5))
    assert (caught.value.category, caught.value.output_produced) == ("not_found", False)


# -- wordings: one meaning, many ways to say it ----------------------------------

_DECISIVE = ("quota_exhausted", "context_length", "content_filter", "not_found")


def _every_wording() -> list[tuple[str, str]]:
    return [(category.value, text) for category, texts in MEANINGS.items() for text in texts]


def _said_as_a_vendor_might(wording: str) -> str:
    """The wording in a sentence, upper-cased, with curly quotes and doubled spaces."""
    text = wording.replace(GAP, "`gpt-4o-mini:latest`").replace("'", "\u2019")
    return f"Error: {text.upper().replace(' ', '  ')}. Please try again."


@pytest.mark.parametrize(("category", "wording"), _every_wording())
def test_every_wording_is_recognised_however_it_is_typed(category: str, wording: str) -> None:
    # A plain 400/500 says nothing of its own, so only the wording can decide.
    status = 400 if category in _DECISIVE else 500
    body = {"error": {"message": _said_as_a_vendor_might(wording)}}
    assert _classify(status, body).category == category


@pytest.mark.parametrize(
    ("message", "category"),
    [
        # Punctuation, quotes and underscores are word breaks, so these are one wording.
        ("context_length_exceeded", "context_length"),
        ("Context-length exceeded!", "context_length"),
        ("The model \u201cllama3:8b\u201d does not exist", "not_found"),
        ("model 'meta-llama/Llama-3.3-70B-Instruct-Turbo' does not exist", "not_found"),
        ("No  endpoints\nfound matching your data policy", "not_found"),
        # Whole words only: a wording inside a longer word is not that wording.
        ("no providersmith configured", "invalid_request"),
        ("ratelimiter header misconfigured", "invalid_request"),
    ],
)
def test_wordings_match_normalised_whole_words(message: str, category: str) -> None:
    assert _classify(400, {"error": {"message": message}}).category == category


def test_normalised_text_is_lower_case_words_and_single_spaces() -> None:
    assert (
        normalise_text("  The model\u2019s `max_tokens`:\n\t4096!  ")
        == "the model s max tokens 4096"
    )


@pytest.mark.parametrize(
    ("status", "message", "category"),
    [
        # An error inside a stream has no status of its own: the wording sharpens it.
        (None, "Rate limit exceeded", "rate_limit"),
        (None, "Model overloaded, try later", "overloaded"),
        (500, "upstream is overloaded", "overloaded"),
        (400, "Too Many Requests", "rate_limit"),
        # A specific status is not overruled by a passing word.
        (429, "The engine is overloaded", "rate_limit"),
        (503, "rate limit of the upstream pool reached", "overloaded"),
        (401, "rate limited: invalid key", "auth"),
    ],
)
def test_load_wordings_sharpen_only_a_status_that_says_nothing(status, message, category) -> None:
    assert _classify(status, {"error": {"message": message}}).category == category


def test_a_gemini_per_minute_quota_message_is_still_a_rate_limit() -> None:
    """Gemini says "exceeded your current quota" for per-minute limits: not a quota wall."""
    body = {
        "error": {
            "code": 429,
            "status": "RESOURCE_EXHAUSTED",
            "message": "You exceeded your current quota, please check your plan and billing.",
        }
    }
    assert _classify(429, body).category == "rate_limit"


def test_a_missing_model_typed_api_error_is_not_found_not_a_server_error() -> None:
    """Ollama's OpenAI-compatible path: the wording is read before the generic type."""
    body = {
        "error": {"message": 'model "qwen2.5" not found, try pulling it first', "type": "api_error"}
    }
    assert _classify(404, body).category == "not_found"
    assert (
        classify_stream_error(provider="p", payload=body, request_id=None).category == "not_found"
    )


def test_recorded_wordings_cite_a_public_source() -> None:
    """Every case added for a wording says where its message was seen."""
    root = Path(__file__).parent / "extra_fixtures"
    cases = [json.loads(path.read_text(encoding="utf-8")) for path in root.glob("*/*.json")]
    sourced = [case for case in cases if "source" in case]
    assert len(sourced) >= 20
    assert all(case["source"].startswith("https://github.com/") for case in sourced)


@pytest.mark.parametrize(
    "message",
    [
        # OpenRouter's ways of saying no upstream can serve the request.
        "No endpoints found that support tool use. To learn more about provider routing, "
        "visit: https://openrouter.ai/docs/provider-routing",
        "No endpoints found that support the provided 'tool_choice' value.",
        "No endpoints found for deepseek/deepseek-chat-v3.1:free.",
        "No allowed providers are available for the selected model.",
        "No available model provider meets your routing requirements",
    ],
)
def test_every_openrouter_dead_end_is_not_found_even_as_a_503(message: str) -> None:
    """A 503 would be retried as an outage; a routing dead end fails over at once."""
    assert _classify(503, {"error": {"code": 503, "message": message}}).category == "not_found"
