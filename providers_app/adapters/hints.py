"""Parse every retry hint the providers send into one number of seconds.

Order (docs/vendors.md, "Retry hints"): ``retry-after-ms``, then ``Retry-After``
(seconds, or an HTTP date taken relative to the response's ``Date`` header),
then Gemini's ``RetryInfo.retryDelay``, then the reset header of the exhausted
rate-limit bucket (Go durations such as ``1.8s``/``6m0s``/``354ms``, or
Anthropic's RFC 3339 instants), then "try again in Xs" in the message. The first
source that parses wins; garbage (negative, NaN, infinite, unparsable) falls
through to the next source. The result is clamped to ``MAX_HINT_S``; the raw
value is kept because a huge hint is itself a signal (a quota wall, docs/vendors.md).
``x-should-retry`` is not a wait but a yes/no, parsed separately.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

MAX_HINT_S = 120.0

_PLAIN_NUMBER = re.compile(r"^(?:\d+(?:\.\d*)?|\.\d+)$")
_GO_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|h|m|s)")
_GO_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_MESSAGE_HINT = re.compile(
    r"(?:try\s+again|retry)\s+(?:in|after)\s+(?P<token>\d[0-9.a-zµμ]*)"
    r"(?:\s+(?P<word>milliseconds?|ms|seconds?|secs?|s|minutes?|mins?)\b)?",
    re.IGNORECASE,
)
_WORD_UNIT_SECONDS = {
    "ms": 1e-3,
    "millisecond": 1e-3,
    "milliseconds": 1e-3,
    "minute": 60.0,
    "minutes": 60.0,
    "min": 60.0,
    "mins": 60.0,
}


@dataclass(frozen=True)
class RetryHint:
    """A parsed wait hint: ``seconds`` is clamped, ``raw_seconds`` is what was sent."""

    seconds: float | None = None
    raw_seconds: float | None = None
    source: str | None = None


def parse_should_retry(headers: Mapping[str, str]) -> bool | None:
    """``x-should-retry: true|false`` as a bool; anything else is no opinion."""
    value = _lowered(headers).get("x-should-retry", "").strip().lower()
    return {"true": True, "false": False}.get(value)


def retry_hint(
    headers: Mapping[str, str],
    *,
    retry_delay: str | None = None,
    message: str = "",
    now: float | None = None,
) -> RetryHint:
    """Find the first usable wait hint in a failed response."""
    lowered = _lowered(headers)
    reference = _reference_time(lowered, now)
    candidates = (
        ("retry-after-ms", lambda: _milliseconds(lowered.get("retry-after-ms"))),
        ("retry-after", lambda: parse_retry_after(lowered.get("retry-after"), reference=reference)),
        ("retry-info", lambda: parse_duration(retry_delay)),
        ("ratelimit-reset", lambda: exhausted_bucket_reset(lowered, reference=reference)),
        ("message", lambda: hint_from_message(message)),
    )
    for source, parse in candidates:
        seconds = parse()
        if seconds is not None:
            return RetryHint(seconds=min(seconds, MAX_HINT_S), raw_seconds=seconds, source=source)
    return RetryHint()


def parse_duration(text: str | None) -> float | None:
    """A Go duration (``1h2m3.5s``, ``354ms``), protobuf Duration (``23s``) or bare seconds."""
    if not text:
        return None
    text = text.strip()
    if _PLAIN_NUMBER.match(text):
        return _valid(float(text))
    position, total = 0, 0.0
    for part in _GO_DURATION_PART.finditer(text):
        if part.start() != position:
            return None
        total += float(part.group(1)) * _GO_UNIT_SECONDS[part.group(2)]
        position = part.end()
    if position == 0 or position != len(text):
        return None
    return _valid(total)


def parse_retry_after(value: str | None, *, reference: float) -> float | None:
    """``Retry-After``: seconds (floats accepted, as the SDKs do) or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if _PLAIN_NUMBER.match(value):
        return _valid(float(value))
    instant = _http_date(value)
    return None if instant is None else max(0.0, instant - reference)


def parse_instant(value: str | None, *, reference: float) -> float | None:
    """An RFC 3339 instant (Anthropic resets) as seconds from ``reference``, at least 0."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, moment.timestamp() - reference)


def exhausted_bucket_reset(headers: Mapping[str, str], *, reference: float) -> float | None:
    """The reset of every bucket whose ``remaining`` is 0; the longest one wins.

    Every vendor pairs the names by swapping ``remaining`` for ``reset``:
    ``x-ratelimit-remaining-tokens``/``x-ratelimit-reset-tokens`` (OpenAI, Groq,
    Azure), ``anthropic-ratelimit-tokens-remaining``/``…-reset``,
    ``ratelimitbysize-remaining``/``ratelimitbysize-reset`` (Mistral).
    """
    lowered = _lowered(headers)
    waits = []
    for name, remaining in lowered.items():
        if "remaining" not in name or not _is_zero(remaining):
            continue
        reset = lowered.get(name.replace("remaining", "reset"))
        if reset is None:
            continue
        wait = parse_duration(reset)
        if wait is None:
            wait = parse_instant(reset, reference=reference)
        if wait is not None:
            waits.append(wait)
    return max(waits) if waits else None


def hint_from_message(message: str) -> float | None:
    """The wait written in the message text.

    "Please try again in 1.8s" (OpenAI, Groq), "Please retry in 10.67s" (Gemini),
    "Please retry after 6 seconds" (Azure).
    """
    match = _MESSAGE_HINT.search(message or "")
    if match is None:
        return None
    token = match.group("token").rstrip(".")
    if _PLAIN_NUMBER.match(token):
        word = (match.group("word") or "s").lower()
        return _valid(float(token) * _WORD_UNIT_SECONDS.get(word, 1.0))
    return parse_duration(token)


def _milliseconds(value: str | None) -> float | None:
    if value is None or not _PLAIN_NUMBER.match(value.strip()):
        return None
    return _valid(float(value) / 1000.0)


def _valid(seconds: float) -> float | None:
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _is_zero(value: str) -> bool:
    value = value.strip()
    return bool(_PLAIN_NUMBER.match(value)) and float(value) == 0.0


def _http_date(value: str) -> float | None:
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _reference_time(lowered: Mapping[str, str], now: float | None) -> float:
    """The response's ``Date`` when present: the server's clock, immune to local skew."""
    server_date = _http_date(lowered.get("date", ""))
    if server_date is not None:
        return server_date
    return time.time() if now is None else now


def _lowered(headers: Mapping[str, str]) -> dict[str, str]:
    return {str(name).lower(): str(value) for name, value in headers.items()}
