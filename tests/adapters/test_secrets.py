"""The API key goes into the auth header and nowhere else.

Not into an exception's message, ``str``, ``repr`` or traceback, not into a log
line (every logger, DEBUG level, urllib3 included), not into a result or a
stream delta, even when the upstream echoes the key back in its body.
"""

from __future__ import annotations

import json
import logging
import re
import traceback

import pytest
import responses

from providers_app.adapters import (
    AdapterConfig,
    ChatRequest,
    Message,
    ProviderError,
    adapter_for,
)
from providers_app.adapters.redaction import REDACTED, scrub_secrets
from providers_app.adapters.transport import HeaderAuth

from .conftest import BASE_URLS, MODELS
from .fault_server import free_port

REQUEST = ChatRequest(messages=(Message("user", "hi"),))
# A vendor-shaped key and an opaque one (Azure keys are 32 hex characters), so the
# exact-value scrubbing is tested on its own, not only the key-shape patterns.
KEYS = ["sk-proj-SECRETsecret0123456789abcdefXYZ", "0f1e2d3c4b5a69788796a5b4c3d2e1f0"]
AUTH_HEADERS = {
    "openai": "Authorization",
    "azure_openai": "api-key",
    "anthropic": "x-api-key",
    "gemini": "x-goog-api-key",
    "ollama": "Authorization",
    "openai_compatible": "Authorization",
    "simulated": "Authorization",
}


def _adapter(kind: str, key: str, base_url: str | None = None):
    config = AdapterConfig(
        provider=f"secret-{kind}",
        base_url=base_url or BASE_URLS[kind],
        model=MODELS[kind],
        api_key=key,
    )
    return adapter_for(kind, config)


def _everything_visible(error: ProviderError) -> str:
    return "\n".join(
        [
            error.message,
            str(error),
            repr(error),
            "".join(traceback.format_exception(error)),
            repr(vars(error)),
        ]
    )


def _assert_key_absent(key: str, *texts: str) -> None:
    for text in texts:
        assert key not in text
        assert key[8:24] not in text  # not even a recognisable slice of it


def _echo_body(key: str) -> dict:
    return {
        "error": {
            "message": f"Incorrect API key provided: {key}. Also tried Bearer {key}.",
            "type": "invalid_request_error",
            "code": "invalid_api_key",
            "param": key,
        },
        "request_id": "req_echo",
    }


@pytest.mark.parametrize("key", KEYS, ids=["vendor-shaped", "opaque"])
@pytest.mark.parametrize("kind", sorted(AUTH_HEADERS))
def test_key_echoed_in_an_error_body_reaches_no_message_repr_or_log(
    kind: str, key: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    adapter = _adapter(kind, key)
    with responses.RequestsMock() as mock:
        mock.add(responses.POST, re.compile(r"https?://.*"), status=401, json=_echo_body(key))
        with pytest.raises(ProviderError) as caught:
            adapter.complete(REQUEST, timeout=5)
        sent = mock.calls[0].request
    error = caught.value
    assert error.category == "auth"
    assert REDACTED in error.message
    assert any(record.name.startswith("providers_app.adapters") for record in caplog.records)
    _assert_key_absent(key, _everything_visible(error), caplog.text, sent.url)
    # ...while the key did go out, in the one header meant for it.
    assert key in sent.headers[AUTH_HEADERS[kind]]
    adapter.close()


@pytest.mark.parametrize("key", KEYS, ids=["vendor-shaped", "opaque"])
def test_key_echoed_inside_a_stream_is_scrubbed_from_deltas_and_errors(
    key: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    adapter = _adapter("openai", key)
    chunk = {"choices": [{"index": 0, "delta": {"content": f"your key is {key}"}}]}
    body = f"data: {json.dumps(chunk)}\n\ndata: {json.dumps(_echo_body(key))}\n\n"
    deltas = []
    with responses.RequestsMock() as mock:
        mock.add(
            responses.POST,
            re.compile(r"https?://.*"),
            body=body,
            content_type="text/event-stream",
        )
        with pytest.raises(ProviderError) as caught:
            deltas.extend(adapter.stream(REQUEST, timeout=5, first_token_timeout=5, idle_timeout=5))
    error = caught.value
    assert error.output_produced is True
    _assert_key_absent(
        key, _everything_visible(error), error.partial_text, repr(deltas), caplog.text
    )
    adapter.close()


@pytest.mark.parametrize("key", KEYS, ids=["vendor-shaped", "opaque"])
def test_key_in_model_output_is_scrubbed_from_the_result(key: str) -> None:
    adapter = _adapter("openai_compatible", key)
    completion = {
        "model": "m",
        "choices": [{"message": {"content": f"Echo: {key}"}, "finish_reason": "stop"}],
    }
    with responses.RequestsMock() as mock:
        mock.add(responses.POST, re.compile(r"https?://.*"), json=completion)
        result = adapter.complete(REQUEST, timeout=5)
    _assert_key_absent(key, repr(result), result.text)
    adapter.close()


@pytest.mark.parametrize("key", KEYS, ids=["vendor-shaped", "opaque"])
def test_transport_errors_carry_no_key(key: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    adapter = _adapter("anthropic", key, base_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ProviderError) as caught:
        adapter.complete(REQUEST, timeout=2)
    error = caught.value
    assert error.category == "transport"
    _assert_key_absent(key, _everything_visible(error), caplog.text)
    # The chained cause no longer holds the prepared request (whose headers hold the key).
    assert getattr(error.__cause__, "request", None) is None
    adapter.close()


def test_configs_adapters_and_auth_hide_the_key() -> None:
    key = KEYS[1]
    config = AdapterConfig(
        provider="p",
        base_url="https://x",
        model="m",
        api_key=key,
        headers={"OpenAI-Organization": "org-secret-0123456789"},
    )
    adapter = adapter_for("openai", config)
    shown = "\n".join([repr(config), str(config), repr(adapter), repr(HeaderAuth("api-key", key))])
    _assert_key_absent(key, shown)
    assert "org-secret" not in shown
    adapter.close()


def test_gemini_sends_the_key_in_a_header_never_in_the_url() -> None:
    key = KEYS[0]
    adapter = _adapter("gemini", key)
    with responses.RequestsMock() as mock:
        mock.add(responses.POST, re.compile(r"https?://.*"), status=500, json={})
        with pytest.raises(ProviderError):
            adapter.complete(REQUEST, timeout=5)
        sent = mock.calls[0].request
    assert "key=" not in sent.url
    assert sent.headers["x-goog-api-key"] == key
    adapter.close()


@pytest.mark.parametrize(
    ("text", "leaked"),
    [
        ("Incorrect API key provided: sk-proj-****************Wq7Z.", "sk-proj-"),
        ("key sk-ant-api03-AbCdEf012345 rejected", "AbCdEf012345"),
        ("bad key AIzaSyA1234567890abcdefghijklmnopqrs", "AIzaSy"),
        ("groq gsk_0123456789abcdefXYZ invalid", "gsk_0123"),
        ("header was Authorization: Bearer abc.def-ghi_jkl", "abc.def"),
        ("GET /v1beta/models?key=AIzaQQ&alt=sse", "AIzaQQ"),
    ],
)
def test_key_shaped_strings_are_scrubbed_whoever_they_belong_to(text: str, leaked: str) -> None:
    scrubbed = scrub_secrets(text)
    assert leaked not in scrubbed
    assert REDACTED in scrubbed


def test_ordinary_words_survive_scrubbing() -> None:
    text = "risk-free task-force desk-level; the key is missing"
    assert scrub_secrets(text) == text


@pytest.mark.parametrize(
    "encode",
    [
        lambda k: __import__("urllib.parse").parse.quote(k, safe=""),
        lambda k: __import__("urllib.parse").parse.quote_plus(k),
        lambda k: __import__("json").dumps(k)[1:-1],
        lambda k: __import__("html").escape(k),
        lambda k: __import__("base64").b64encode(k.encode()).decode(),
    ],
    ids=["percent", "form", "json", "html", "base64"],
)
def test_the_configured_key_is_scrubbed_in_its_encoded_forms(encode):
    from providers_app.adapters.redaction import scrub_secrets

    key = 'own-key/with+odd="chars"&more'
    text = f"rejected credential {encode(key)} for this account"
    assert encode(key) not in scrub_secrets(text, [key])
    assert "[REDACTED]" in scrub_secrets(text, [key])
