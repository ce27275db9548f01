"""Every recorded provider response replays through its adapter to the expected outcome.

One parametrised test over ``tests/fixtures/providers/<vendor>/<case>.json`` (plus
the supplementary cases in ``tests/adapters/extra_fixtures/``, same schema): a new
fixture file is tested without new code. Each case's ``expected`` block is held
to: the category, retry-on-same-provider and failover, ``retry_after_s``, and for
successes and streams the text, finish reason, token counts, model, the partial
text before a mid-stream error and the ``if_nothing_forwarded_yet`` decision.

How ``expected.retry_same_provider``/``failover`` map onto ``decide()``: the
fixtures mark a rate limit whose hint fits as "retry here, do not fail over"
and one without a hint as "back off here, then fail over". That depends on the
caller's inline-wait cap and time left, so the cases are judged with a 30 s cap
and the design's 45 s default deadline; every hint in the fixtures (≤ 23 s) fits.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import responses

from providers_app.adapters import POLICY, Category, ProviderAdapter, ProviderError, decide
from providers_app.adapters.normalise import normalise_finish_reason

HERE = Path(__file__).parent
FIXTURE_DIRS = (HERE.parent / "fixtures" / "providers", HERE / "extra_fixtures")
CASES = sorted(path for root in FIXTURE_DIRS for path in root.glob("*/*.json"))

INLINE_WAIT_CAP_S = 30.0
TIME_LEFT_S = 45.0
STREAM_CONTENT_TYPES = ("text/event-stream", "application/x-ndjson")


def _case_id(path: Path) -> str:
    origin = "extra:" if path.is_relative_to(FIXTURE_DIRS[1]) else ""
    return f"{origin}{path.parent.name}/{path.stem}"


def _is_stream(case: dict[str, Any]) -> bool:
    content_type = case["headers"].get("content-type", "")
    return content_type.startswith(STREAM_CONTENT_TYPES)


def _register(mock: responses.RequestsMock, case: dict[str, Any]) -> None:
    headers = dict(case["headers"])
    content_type = headers.pop("content-type", "application/json")
    body = case["body"]
    raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    for method in (responses.POST, responses.GET):
        mock.add(
            method,
            re.compile(r"https?://.*"),
            status=case["status"],
            headers=headers,
            content_type=content_type,
            body=raw,
        )


def _run_stream(adapter: ProviderAdapter) -> tuple[list[Any], ProviderError | None]:
    deltas: list[Any] = []
    try:
        for delta in adapter.stream(
            _request(), timeout=10.0, first_token_timeout=10.0, idle_timeout=10.0
        ):
            deltas.append(delta)
    except ProviderError as error:
        return deltas, error
    return deltas, None


def _run_complete(adapter: ProviderAdapter) -> tuple[Any, ProviderError | None]:
    try:
        return adapter.complete(_request(), timeout=10.0), None
    except ProviderError as error:
        return None, error


def _request():
    from providers_app.adapters import ChatRequest, Message

    return ChatRequest(messages=(Message("user", "What is the capital of Peru?"),))


@pytest.mark.parametrize("path", CASES, ids=_case_id)
def test_recorded_case_replays_to_its_expected_outcome(path: Path, make_adapter) -> None:
    case = json.loads(path.read_text(encoding="utf-8"))
    expected = case["expected"]
    adapter = make_adapter(case["provider"])
    streaming = _is_stream(case)

    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        _register(mock, case)
        if streaming:
            outputs, error = _run_stream(adapter)
        else:
            result, error = _run_complete(adapter)
            # An HTTP error is classified the same whether the call streamed or not.
            if case["status"] >= 400:
                _, stream_error = _run_stream(adapter)
                assert stream_error is not None
                assert stream_error.category == error.category
                assert stream_error.retry_after == error.retry_after

    category = expected["category"]
    if category == "success":
        assert error is None, f"unexpected {error!r}"
        if streaming:
            _assert_stream_extract(adapter, outputs, expected["extract"])
        else:
            _assert_result_extract(adapter, result, expected["extract"])
    elif category == "midstream_error":
        _assert_midstream_error(error, outputs, expected)
    else:
        _assert_classified_error(error, expected)
        if "extract" in expected:  # a filtered 200: the vendor's reason is named
            assert expected["extract"]["finish_reason"] in error.message


def _assert_classified_error(error: ProviderError | None, expected: dict[str, Any]) -> None:
    assert error is not None, "expected a classified error, got a success"
    assert error.category == Category(expected["category"])
    assert not error.output_produced
    _assert_retry_after(error, expected["retry_after_s"])
    decision = decide(error, inline_wait_cap_s=INLINE_WAIT_CAP_S, time_left_s=TIME_LEFT_S)
    assert decision.retry_same is expected["retry_same_provider"]
    assert decision.failover is expected["failover"]
    if error.category is Category.RATE_LIMIT and error.retry_after:
        # The same hint no longer fits a tighter cap: fail over now, cool down.
        tight = decide(error, inline_wait_cap_s=error.retry_after / 2, time_left_s=TIME_LEFT_S)
        assert (tight.retry_same, tight.failover) == (False, True)


def _assert_midstream_error(
    error: ProviderError | None, outputs: list[Any], expected: dict[str, Any]
) -> None:
    assert error is not None, "the stream should have failed"
    text = "".join(delta.text for delta in outputs if delta.is_output)
    assert text == expected["partial_text"]
    assert error.output_produced is True
    assert error.partial_text == expected["partial_text"]
    _assert_retry_after(error, expected["retry_after_s"])
    committed = decide(error, inline_wait_cap_s=INLINE_WAIT_CAP_S, time_left_s=TIME_LEFT_S)
    assert committed.retry_same is expected["retry_same_provider"]
    assert committed.failover is expected["failover"]
    # Had nothing been forwarded yet, the inner error decides like a non-stream failure.
    before_commit = expected["if_nothing_forwarded_yet"]
    assert error.category == Category(before_commit["category"])
    assert POLICY[error.category].retry_same is before_commit["retry_same_provider"]
    assert POLICY[error.category].failover is before_commit["failover"]


def _assert_result_extract(adapter: ProviderAdapter, result: Any, extract: dict[str, Any]) -> None:
    assert result.text == extract["text"]
    assert result.raw_finish_reason == extract["finish_reason"]
    assert result.finish_reason == normalise_finish_reason(
        extract["finish_reason"], adapter.finish_reasons
    )
    assert result.input_tokens == extract.get("input_tokens", result.input_tokens)
    assert result.output_tokens == extract.get("output_tokens", result.output_tokens)
    assert result.model == extract["model"]
    assert result.latency_s >= 0


def _assert_stream_extract(
    adapter: ProviderAdapter, outputs: list[Any], extract: dict[str, Any]
) -> None:
    text = "".join(delta.text for delta in outputs if delta.is_output)
    final = outputs[-1]
    assert text == extract["text"]
    assert not final.is_output
    assert final.raw_finish_reason == extract["finish_reason"]
    assert final.finish_reason == normalise_finish_reason(
        extract["finish_reason"], adapter.finish_reasons
    )
    if "input_tokens" in extract:
        assert final.input_tokens == extract["input_tokens"]
        assert final.output_tokens == extract["output_tokens"]
    assert final.model == extract["model"]


def _assert_retry_after(error: ProviderError, expected_s: float | None) -> None:
    if expected_s is None:
        assert error.retry_after is None
    else:
        assert error.retry_after == pytest.approx(expected_s)


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
