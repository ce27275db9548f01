"""Every recorded provider response, replayed through the engine with production defaults.

One parametrised test over ``tests/fixtures/providers/<vendor>/<case>.json`` (plus
the supplementary cases in ``tests/adapters/extra_fixtures/``, same schema): a new
fixture file is tested without new code. Each case is served by ``responses`` as
the answer of a *primary* provider of the case's kind; a healthy *secondary*
stands behind it. The request goes through ``fallback.complete()`` (or
``fallback.stream()`` for streamed cases, and for HTTP errors both), so the one
production decision (``engine/decision.py``) with the default settings decides;
no setting is overridden. What the case's ``expected`` block means there:

- success: the primary answers with the recorded text, finish reason and tokens.
- ``retry_same_provider``: the primary is asked again, after waiting at least
  the hint, if the hint fits the production inline cap ("retry if the hint
  fits"); a hint that does not fit means one attempt, no wait, and a cooldown of
  exactly the hint.
- ``failover``: the secondary answers; otherwise the caller gets the error
  (fail fast), except that a hinted rate limit still fails over once the
  primary's attempts are spent, or at once when its hint does not fit.
- ``midstream_error``: the stream is committed, ends with ``StreamInterrupted``
  after exactly ``partial_text``, and never switches providers.

Time is a ``FakeClock``: waits are recorded, not slept.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import responses

from providers_app.adapters import Category
from providers_app.adapters.normalise import normalise_finish_reason

from .conftest import BASE_URLS, MODELS

HERE = Path(__file__).parent
FIXTURE_DIRS = (HERE.parent / "fixtures" / "providers", HERE / "extra_fixtures")
CASES = sorted(path for root in FIXTURE_DIRS for path in root.glob("*/*.json"))

STREAM_CONTENT_TYPES = ("text/event-stream", "application/x-ndjson")
SECONDARY_URL = "https://secondary.invalid/v1"
SECONDARY_TEXT = "Lima, from the secondary."
KEY_ENV = "FIXTURE_REPLAY_API_KEY"
MESSAGES = [{"role": "user", "content": "What is the capital of Peru?"}]


def _case_id(path: Path) -> str:
    origin = "extra:" if path.is_relative_to(FIXTURE_DIRS[1]) else ""
    return f"{origin}{path.parent.name}/{path.stem}"


def _is_stream(case: dict[str, Any]) -> bool:
    return case["headers"].get("content-type", "").startswith(STREAM_CONTENT_TYPES)


def _host(url: str) -> str:
    return re.match(r"https?://[^/]+", url).group(0)


def _secondary_answer(request: Any) -> tuple[int, dict[str, str], str]:
    """A healthy OpenAI-compatible answer, streamed when the request asks for it."""
    if json.loads(request.body).get("stream"):
        chunk = {"choices": [{"index": 0, "delta": {"content": SECONDARY_TEXT}}]}
        end = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        body = f"data: {json.dumps(chunk)}\n\ndata: {json.dumps(end)}\n\ndata: [DONE]\n\n"
        return 200, {"content-type": "text/event-stream"}, body
    body = {
        "id": "chatcmpl-secondary",
        "model": "secondary-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": SECONDARY_TEXT},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 5},
    }
    return 200, {"content-type": "application/json"}, json.dumps(body)


@pytest.fixture
def replay(db, monkeypatch):
    """A primary of the case's kind served by `responses`, a healthy secondary behind it."""
    from providers_app.models import Provider
    from providers_app.testing import process_state_reset
    from tests.factories import provider_create

    monkeypatch.setenv(KEY_ENV, "sk-test-Zq81vN3pLk02RtYx55uWbCdE")
    process_state_reset()
    mock = responses.RequestsMock(assert_all_requests_are_fired=False)
    mock.start()

    def setup(case: dict[str, Any]) -> tuple[Provider, Provider]:
        kind = case["provider"]
        headers = dict(case["headers"])
        content_type = headers.pop("content-type", "application/json")
        body = case["body"]
        raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        mock.add(
            responses.POST,
            re.compile(re.escape(_host(BASE_URLS[kind])) + r"/.*"),
            status=case["status"],
            headers=headers,
            content_type=content_type,
            body=raw,
        )
        mock.add_callback(
            responses.POST, re.compile(re.escape(SECONDARY_URL) + r"/.*"), _secondary_answer
        )
        extra = {"params": {"api-version": "2024-10-21"}} if kind == "azure_openai" else {}
        primary = provider_create(
            name="primary", kind=kind, base_url=BASE_URLS[kind], model=MODELS[kind],
            api_key_env=KEY_ENV, extra=extra,
        )  # fmt: skip
        # A larger window than any fixture's model: a context-length failure may go there.
        secondary = provider_create(
            name="secondary", kind="openai_compatible", base_url=SECONDARY_URL,
            model="secondary-model", context_window=10_000_000,
        )  # fmt: skip
        return primary, secondary

    def calls(base_url: str) -> int:
        return sum(1 for call in mock.calls if call.request.url.startswith(_host(base_url)))

    setup.calls = calls
    yield setup
    mock.stop()
    mock.reset()
    process_state_reset()


@pytest.mark.parametrize("path", CASES, ids=_case_id)
def test_recorded_case_replays_through_the_engine(path: Path, replay, fake_clock) -> None:
    case = json.loads(path.read_text(encoding="utf-8"))
    primary, _ = replay(case)
    if _is_stream(case):
        _check(case, _run_stream, replay, fake_clock, primary)
        return
    _check(case, _run_complete, replay, fake_clock, primary)
    if case["status"] >= 400:
        # An HTTP error is decided the same whether the call streamed or not.
        from providers_app.engine.breaker import breaker_reset
        from providers_app.testing import process_state_reset

        breaker_reset(provider_id=primary.pk)
        process_state_reset()
        fake_clock.slept.clear()
        fake_clock.advance(600)  # past any cooldown the first run set
        before = replay.calls(BASE_URLS[case["provider"]]), replay.calls(SECONDARY_URL)
        _check(case, _run_stream, replay, fake_clock, primary, before=before)


def _run_complete() -> tuple[str, str | None, Any]:
    from providers_app.engine import fallback

    try:
        answer = fallback.complete(MESSAGES)
    except fallback.FallbackError as error:
        return "", None, error
    return answer.text, answer.finish_reason, answer


def _run_stream() -> tuple[str, str | None, Any]:
    from providers_app.engine import fallback

    received: list[Any] = []
    try:
        stream = fallback.stream(MESSAGES)
        for chunk in stream:
            received.append(chunk)
    except fallback.FallbackError as error:
        return "".join(c.text for c in received), None, error
    finish = next((c.finish_reason for c in reversed(received) if c.finish_reason), None)
    return "".join(c.text for c in received), finish, (stream, received)


def _check(case, run, replay, fake_clock, primary, *, before=(0, 0)):
    from providers_app.engine import fallback
    from providers_app.models import BreakerState

    expected = case["expected"]
    kind = case["provider"]
    text, finish, outcome = run()
    primary_calls = replay.calls(BASE_URLS[kind]) - before[0]
    secondary_calls = replay.calls(SECONDARY_URL) - before[1]
    category = expected["category"]

    if category == "success":
        assert not isinstance(outcome, Exception), f"unexpected {outcome!r}"
        extract = expected["extract"]
        assert text == extract["text"]
        assert finish == normalise_finish_reason(extract["finish_reason"], _finish_map(kind))
        assert (primary_calls, secondary_calls) == (1, 0)
        if run is _run_complete and "input_tokens" in extract:
            assert (outcome.input_tokens, outcome.output_tokens) == (
                extract["input_tokens"], extract["output_tokens"],
            )  # fmt: skip
        return

    if category == "midstream_error":
        assert isinstance(outcome, fallback.StreamInterrupted), outcome
        assert text == expected["partial_text"] == outcome.error.partial_text
        assert outcome.category == Category(expected["if_nothing_forwarded_yet"]["category"])
        assert (primary_calls, secondary_calls) == (1, 0)  # committed: never switched
        return

    hint = expected["retry_after_s"]
    from providers_app.conf import DEFAULTS

    hint_fits = hint is None or hint <= DEFAULTS["MAX_INLINE_RETRY_AFTER_S"]
    retried = expected["retry_same_provider"] and hint_fits
    assert primary_calls == (2 if retried else 1)  # Provider.max_attempts defaults to 2
    if retried and hint is not None:
        assert fake_clock.slept
        assert fake_clock.slept[0] >= hint  # a hint is never shortened
    if not retried:
        assert fake_clock.slept == []  # failed over (or failed) at once

    # A retried rate limit fails over once the attempts are spent; a hint that
    # does not fit fails over at once ("else fail over plus cooldown").
    fails_over = expected["failover"] or retried or not hint_fits
    if fails_over:
        assert text == SECONDARY_TEXT
        assert secondary_calls == 1
        failure = outcome.failures[0] if run is _run_complete else outcome[0].failures[0]
        assert failure.reason == expected["category"]
    else:
        assert isinstance(outcome, fallback.RequestFailed), outcome
        assert outcome.category == Category(expected["category"])
        assert secondary_calls == 0
        if "extract" in expected:  # a filtered 200: the vendor's reason is named
            assert expected["extract"]["finish_reason"] in outcome.error.message

    if hint is not None and not retried:
        # A hint that is not waited out cools the provider down for exactly the hint.
        cooldown = BreakerState.objects.get(pk=primary.pk).cooldown_until
        assert cooldown == fake_clock.now() + timedelta(seconds=hint)


def _finish_map(kind: str):
    from providers_app.adapters import ADAPTERS

    return ADAPTERS[kind].finish_reasons


def test_every_vendor_directory_has_cases() -> None:
    """Guards the glob: an empty or moved fixture directory must not pass silently."""
    vendors = {path.parent.name for path in CASES}
    assert vendors >= {
        "openai",
        "azure_openai",
        "anthropic",
        "gemini",
        "ollama",
        "openai_compatible",
    }
    assert len(CASES) >= 64
