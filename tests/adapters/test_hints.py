"""The retry-hint parser: every variant, the order between them, clamping, garbage."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from providers_app.adapters.hints import (
    MAX_HINT_S,
    exhausted_bucket_reset,
    hint_from_message,
    parse_duration,
    parse_retry_after,
    parse_should_retry,
    retry_hint,
)

# Tue, 12 Aug 2025 10:04:00 GMT
SERVER_NOW = 1754993040.0
DATE = {"date": "Tue, 12 Aug 2025 10:04:00 GMT"}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1.8s", 1.8),
        ("6m0s", 360.0),
        ("354ms", 0.354),
        ("12ms", 0.012),
        ("1h2m3s", 3723.0),
        ("2m59.56s", 179.56),
        ("6m54.2s", 414.2),
        ("10.673410956s", 10.673410956),
        ("23s", 23.0),
        ("1500us", 0.0015),
        ("1500µs", 0.0015),
        ("250000000ns", 0.25),
        ("8", 8.0),
        ("0.5", 0.5),
        ("0s", 0.0),
    ],
)
def test_go_and_protobuf_durations_parse(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "garbage", ["", "abc", "-1s", "-5", "1x", "s", "1.8 s", "nan", "inf", "NaN", "1e3", "1s2", "ms"]
)
def test_garbage_durations_are_ignored(garbage: str) -> None:
    assert parse_duration(garbage) is None


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("17", 17.0),
        ("1.5", 1.5),
        ("Tue, 12 Aug 2025 10:04:30 GMT", 30.0),
        ("Tuesday, 12-Aug-25 10:04:45 GMT", 45.0),  # obsolete RFC 850 form
        ("Tue, 12 Aug 2025 10:00:00 GMT", 0.0),  # already past: retry now
    ],
)
def test_retry_after_is_seconds_or_an_http_date(value: str, seconds: float) -> None:
    assert parse_retry_after(value, reference=SERVER_NOW) == pytest.approx(seconds)


@pytest.mark.parametrize("garbage", ["", "soon", "-5", "NaN", "inf", "1e9x", "Tue, 99 Foo 2025"])
def test_garbage_retry_after_is_ignored(garbage: str) -> None:
    assert parse_retry_after(garbage, reference=SERVER_NOW) is None


def test_http_date_is_taken_relative_to_the_response_date_not_the_local_clock() -> None:
    headers = {**DATE, "Retry-After": "Tue, 12 Aug 2025 10:04:30 GMT"}
    # A local clock a day off does not matter while the response carries a Date.
    assert retry_hint(headers, now=SERVER_NOW + 86400).seconds == pytest.approx(30.0)


def test_http_date_without_a_date_header_uses_the_local_clock() -> None:
    headers = {"retry-after": "Tue, 12 Aug 2025 10:04:30 GMT"}
    assert retry_hint(headers, now=SERVER_NOW + 10).seconds == pytest.approx(20.0)


@pytest.mark.parametrize(
    ("headers", "retry_delay", "message", "seconds", "source"),
    [
        ({"retry-after-ms": "5620", "retry-after": "6"}, None, "", 5.62, "retry-after-ms"),
        ({"retry-after": "6"}, "23s", "", 6.0, "retry-after"),
        (
            {"x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "1.8s"},
            "23s",
            "",
            23.0,
            "retry-info",
        ),
        (
            {"x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "1.8s"},
            None,
            "Please try again in 9s.",
            1.8,
            "ratelimit-reset",
        ),
        ({}, None, "Please try again in 1.8s. Visit …", 1.8, "message"),
        ({"retry-after-ms": "soon", "retry-after": "-1"}, "bogus", "retry in 4s", 4.0, "message"),
    ],
)
def test_sources_are_tried_in_order_and_garbage_falls_through(
    headers, retry_delay, message, seconds, source
) -> None:
    hint = retry_hint(headers, retry_delay=retry_delay, message=message, now=SERVER_NOW)
    assert hint.seconds == pytest.approx(seconds)
    assert hint.source == source


def test_only_the_exhausted_bucket_counts_and_the_longest_wins() -> None:
    headers = {
        "x-ratelimit-remaining-requests": "9941",
        "x-ratelimit-reset-requests": "354ms",
        "x-ratelimit-remaining-tokens": "0",
        "x-ratelimit-reset-tokens": "7.66s",
        "x-ratelimit-remaining-tokens-day": "0",
        "x-ratelimit-reset-tokens-day": "12s",
    }
    assert exhausted_bucket_reset(headers, reference=SERVER_NOW) == pytest.approx(12.0)
    del headers["x-ratelimit-remaining-tokens"], headers["x-ratelimit-remaining-tokens-day"]
    assert exhausted_bucket_reset(headers, reference=SERVER_NOW) is None


def test_anthropic_resets_are_rfc3339_instants_relative_to_the_date_header() -> None:
    headers = {
        **DATE,
        "anthropic-ratelimit-requests-remaining": "3961",
        "anthropic-ratelimit-requests-reset": "2025-08-12T10:04:00Z",
        "anthropic-ratelimit-input-tokens-remaining": "0",
        "anthropic-ratelimit-input-tokens-reset": "2025-08-12T10:04:17Z",
    }
    hint = retry_hint(headers)
    assert hint.seconds == pytest.approx(17.0)
    assert hint.source == "ratelimit-reset"


def test_mistral_bucket_resets_in_plain_seconds() -> None:
    headers = {"ratelimitbysize-remaining": "0", "ratelimitbysize-reset": "42"}
    assert retry_hint(headers).seconds == pytest.approx(42.0)


@pytest.mark.parametrize(
    ("message", "seconds"),
    [
        ("Please try again in 1.8s.", 1.8),
        ("Please try again in 354ms.", 0.354),
        ("Please try again in 1m30s.", 90.0),
        ("Please retry in 10.673410956s.", 10.673410956),
        ("Please retry after 6 seconds.", 6.0),
        ("Try again in 2 minutes", 120.0),
        ("Please try again later.", None),
        ("retry your request", None),
        ("", None),
    ],
)
def test_wait_written_in_the_message(message: str, seconds: float | None) -> None:
    parsed = hint_from_message(message)
    assert parsed == (None if seconds is None else pytest.approx(seconds))


def test_hints_are_clamped_but_the_raw_value_is_kept() -> None:
    hint = retry_hint({"retry-after": "86400"})
    assert hint.seconds == MAX_HINT_S
    assert hint.raw_seconds == 86400.0


def test_no_hint_at_all() -> None:
    hint = retry_hint({"content-type": "application/json"}, message="Internal error")
    assert (hint.seconds, hint.raw_seconds, hint.source) == (None, None, None)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("TRUE", True), (" false ", False), ("maybe", None), ("", None)],
)
def test_x_should_retry(value: str, expected: bool | None) -> None:
    assert parse_should_retry({"X-Should-Retry": value}) is expected
    assert parse_should_retry({}) is None


_header_names = st.sampled_from(
    [
        "retry-after",
        "retry-after-ms",
        "date",
        "x-ratelimit-remaining-tokens",
        "x-ratelimit-reset-tokens",
        "anthropic-ratelimit-tokens-remaining",
        "anthropic-ratelimit-tokens-reset",
    ]
)


@given(
    headers=st.dictionaries(_header_names, st.text(max_size=40), max_size=7),
    retry_delay=st.one_of(st.none(), st.text(max_size=20)),
    message=st.text(max_size=80),
)
def test_any_input_gives_no_hint_or_a_finite_clamped_one(headers, retry_delay, message) -> None:
    hint = retry_hint(headers, retry_delay=retry_delay, message=message, now=SERVER_NOW)
    if hint.seconds is not None:
        assert math.isfinite(hint.seconds)
        assert 0.0 <= hint.seconds <= MAX_HINT_S
