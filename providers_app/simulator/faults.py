"""Fault modes of the upstream simulator: validation and thread-safe state.

Nothing here touches sockets. ``SimulatorState`` is the single piece of shared
mutable state of one simulator: the active fault, the position in a scripted
sequence, the request counters, and the event that hung requests wait on.
Every handler thread and the controlling test go through its lock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = [
    "FAULT_MODES",
    "HEALTH_FAULT_MODES",
    "Fault",
    "FaultConfigError",
    "SimulatorState",
    "parse_fault",
]


class FaultConfigError(ValueError):
    """A fault mode or option was refused; ``param`` names the offending field."""

    def __init__(self, message: str, *, param: str) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


# --- option validators --------------------------------------------------------
# Each takes the raw value and its dotted name (for the error message) and
# returns the normalised value. Options arrive from Python and from JSON, so
# they accept the JSON spellings (int for float, null for "none").

Validator = Callable[[Any, str], Any]


def _seconds(value: Any, param: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise FaultConfigError(f"{param} must be a number >= 0", param=param)
    return float(value)


def _positive_seconds(value: Any, param: str) -> float:
    seconds = _seconds(value, param)
    if seconds == 0:
        raise FaultConfigError(f"{param} must be a number > 0", param=param)
    return seconds


def _count(value: Any, param: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise FaultConfigError(f"{param} must be an integer >= 0", param=param)
    return value


def _optional_count(value: Any, param: str) -> int | None:
    return None if value is None else _count(value, param)


def _status(value: Any, param: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 100 <= value <= 599:
        raise FaultConfigError(f"{param} must be an HTTP status 100-599", param=param)
    return value


def _error_status(value: Any, param: str) -> int:
    status = _status(value, param)
    if status < 400:
        raise FaultConfigError(f"{param} must be an error status >= 400", param=param)
    return status


def _text(value: Any, param: str) -> str:
    if not isinstance(value, str):
        raise FaultConfigError(f"{param} must be a string", param=param)
    return value


def _optional_text(value: Any, param: str) -> str | None:
    return None if value is None else _text(value, param)


def _header_value(value: Any, param: str) -> str | None:
    """A header value sent verbatim; numbers are accepted for convenience."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise FaultConfigError(f"{param} must be a string, a number or null", param=param)
    text = str(value)
    if "\r" in text or "\n" in text:
        raise FaultConfigError(f"{param} must not contain line breaks", param=param)
    return text


def _headers(value: Any, param: str) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise FaultConfigError(f"{param} must be an object of header names to values", param=param)
    headers: dict[str, str] = {}
    for name, raw in value.items():
        checked = _header_value(raw, f"{param}.{name}")
        if not isinstance(name, str) or not name or checked is None:
            raise FaultConfigError(f"{param}.{name} must be a non-empty header", param=param)
        headers[name] = checked
    return headers


# --- the mode table -----------------------------------------------------------
# mode -> {option: (validator, default)}. Defaults are stored in the normalised
# options, so ``GET /_sim/state`` shows exactly what the next request will do.

# A JSON document cut off mid-way, as a crashed proxy sends it.
_GARBAGE_BODY = '{"id": "chatcmpl-sim", "object": "chat.completion", "choices": ['

_ERROR_HINTS: dict[str, tuple[Validator, Any]] = {
    "retry_after": (_header_value, None),
    "retry_after_ms": (_header_value, None),
    "headers": (_headers, {}),
}

_MODE_OPTIONS: dict[str, dict[str, tuple[Validator, Any]]] = {
    "ok": {
        "text": (_optional_text, None),
        "delay_s": (_seconds, 0.0),
        "chunk_delay_s": (_seconds, 0.0),
        "finish_reason": (_text, "stop"),
    },
    "error": {
        "status": (_error_status, 500),
        "message": (_optional_text, None),
        "type": (_optional_text, None),
        "code": (_optional_text, None),
        "param": (_optional_text, None),
        **_ERROR_HINTS,
    },
    "rate_limit": {
        **_ERROR_HINTS,
        "retry_after": (_header_value, "1"),
        "message": (_optional_text, None),
    },
    "quota": {**_ERROR_HINTS, "message": (_optional_text, None)},
    "hang": {"seconds": (_positive_seconds, None)},
    "reset": {},
    "reset_mid_body": {"chunks_before": (_count, 2), "pause_s": (_seconds, 0.05)},
    "garbage": {"body": (_text, _GARBAGE_BODY)},
    "html_502": {"status": (_error_status, 502)},
    "slow_first_token": {
        "delay_s": (_seconds, 1.0),
        "interval_s": (_positive_seconds, 0.2),
        "text": (_optional_text, None),
    },
    "midstream_error": {
        "chunks_before": (_count, 2),
        "message": (_optional_text, None),
        "text": (_optional_text, None),
    },
    "truncate_stream": {"chunks": (_optional_count, None), "text": (_optional_text, None)},
    # Stream: `chunks` content chunks, then silence for `seconds` (released early
    # by set_fault, reset or stop), then the rest of the answer.
    "stall_stream": {
        "chunks": (_count, 2),
        "seconds": (_positive_seconds, 30.0),
        "text": (_optional_text, None),
    },
    # Like Claude 4.6 and later: a request ending in an assistant message (a
    # prefill) is refused with a 400; any other request is answered normally.
    "reject_prefill": {
        "status": (_error_status, 400),
        "message": (
            _text,
            "This model does not support assistant message prefill. "
            "The conversation must end with a user message.",
        ),
        "text": (_optional_text, None),
    },
    "malformed_events": {
        "chunks_before": (_count, 2),
        "count": (_count, 1),
        "text": (_optional_text, None),
    },
    "sequence": {},  # ``steps`` is parsed by ``_parse_steps``, not by a validator
}

FAULT_MODES: tuple[str, ...] = tuple(_MODE_OPTIONS)

# Modes that ``GET /v1/models`` also obeys: the ones a real outage would show a
# health check too. Quota exhaustion and stream faults only appear on inference.
HEALTH_FAULT_MODES: frozenset[str] = frozenset(
    {"error", "rate_limit", "hang", "reset", "reset_mid_body", "garbage", "html_502"}
)


@dataclass(frozen=True)
class Fault:
    """One validated fault: a mode and its options with defaults filled in.

    Shared read-only by every handler thread, hence frozen with a read-only
    options mapping. Build it with ``parse_fault``.
    """

    mode: str = "ok"
    options: Mapping[str, Any] = field(default_factory=dict)
    steps: tuple[Fault, ...] = ()

    def option(self, name: str) -> Any:
        return self.options[name]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form, as ``POST /_sim/fault`` accepts it."""
        options: dict[str, Any] = dict(self.options)
        if self.mode == "sequence":
            options = {"steps": [step.as_dict() for step in self.steps]}
        return {"mode": self.mode, "options": options}


def parse_fault(mode: Any, options: Mapping[str, Any] | None = None) -> Fault:
    """Validate ``mode`` and ``options``; raise ``FaultConfigError`` naming the field."""
    if not isinstance(mode, str) or mode not in _MODE_OPTIONS:
        raise FaultConfigError(
            f"mode must be one of: {', '.join(FAULT_MODES)}; got {mode!r}", param="mode"
        )
    options = {} if options is None else options
    if not isinstance(options, Mapping):
        raise FaultConfigError("options must be an object", param="options")
    if mode == "sequence":
        return _parse_sequence(options)
    return Fault(mode, MappingProxyType(_parse_options(mode, options, prefix="options")))


def _parse_options(mode: str, options: Mapping[str, Any], *, prefix: str) -> dict[str, Any]:
    schema = _MODE_OPTIONS[mode]
    unknown = sorted(set(options) - set(schema))
    if unknown:
        allowed = ", ".join(schema) or "none"
        raise FaultConfigError(
            f"unknown option {unknown[0]!r} for mode {mode!r} (allowed: {allowed})",
            param=f"{prefix}.{unknown[0]}",
        )
    parsed: dict[str, Any] = {}
    for name, (validate, default) in schema.items():
        parsed[name] = validate(options[name], f"{prefix}.{name}") if name in options else default
    return parsed


def _parse_sequence(options: Mapping[str, Any]) -> Fault:
    unknown = sorted(set(options) - {"steps"})
    if unknown:
        raise FaultConfigError(
            f"unknown option {unknown[0]!r} for mode 'sequence' (allowed: steps)",
            param=f"options.{unknown[0]}",
        )
    steps = options.get("steps")
    if isinstance(steps, str | bytes) or not isinstance(steps, Sequence) or not steps:
        raise FaultConfigError("options.steps must be a non-empty list", param="options.steps")
    parsed = tuple(_parse_step(step, index) for index, step in enumerate(steps))
    return Fault("sequence", {}, parsed)


def _parse_step(step: Any, index: int) -> Fault:
    """Accept ``{"mode": m, "options": {...}}``, ``(m, {...})`` or a bare ``"m"``."""
    param = f"options.steps[{index}]"
    if isinstance(step, str):
        mode, options = step, {}
    elif isinstance(step, Mapping):
        mode, options = step.get("mode"), step.get("options", {})
        extra = sorted(set(step) - {"mode", "options"})
        if extra:
            raise FaultConfigError(f"{param} has unknown key {extra[0]!r}", param=param)
    elif isinstance(step, Sequence) and len(step) == 2:  # (mode, options)
        mode, options = step
    else:
        raise FaultConfigError(f"{param} must be {{'mode': ..., 'options': {{...}}}}", param=param)
    if mode == "sequence" or not isinstance(mode, str) or mode not in _MODE_OPTIONS:
        raise FaultConfigError(
            f"{param}.mode must be one of the non-sequence modes; got {mode!r}",
            param=f"{param}.mode",
        )
    if not isinstance(options, Mapping):
        raise FaultConfigError(f"{param}.options must be an object", param=f"{param}.options")
    return Fault(mode, MappingProxyType(_parse_options(mode, options, prefix=f"{param}.options")))


@dataclass(frozen=True)
class Ticket:
    """What one request was dealt: its fault and the event that releases a hang."""

    fault: Fault
    release: threading.Event


class SimulatorState:
    """Active fault and counters of one simulator, safe to use from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fault = parse_fault("ok")
        self._step_index = 0
        self._request_times: list[float] = []
        self._health_count = 0
        # Hung requests wait on the event of the configuration they arrived
        # under; changing the fault sets it, so they never outlive their fault.
        self._release = threading.Event()
        self._last_request: dict[str, Any] | None = None

    # -- configuration ---------------------------------------------------------

    def set_fault(self, fault: Fault) -> None:
        with self._lock:
            self._fault = fault
            self._step_index = 0
            self._rotate_release()

    def reset(self) -> None:
        with self._lock:
            self._fault = parse_fault("ok")
            self._step_index = 0
            self._request_times = []
            self._health_count = 0
            self._last_request = None
            self._rotate_release()

    def release_waiters(self) -> None:
        """Free every hung request without changing the fault (used by ``stop``)."""
        with self._lock:
            self._rotate_release()

    def _rotate_release(self) -> None:
        self._release.set()
        self._release = threading.Event()

    # -- per request -----------------------------------------------------------

    def begin_chat(self) -> Ticket:
        """Count a chat request and deal its fault, advancing any sequence."""
        with self._lock:
            self._request_times.append(time.time())
            fault = self._current_step()
            if self._fault.mode == "sequence":
                self._step_index += 1
            return Ticket(fault, self._release)

    def begin_health(self) -> Ticket:
        """Count a health request; a sequence is peeked at, not advanced."""
        with self._lock:
            self._health_count += 1
            return Ticket(self._current_step(), self._release)

    def _current_step(self) -> Fault:
        if self._fault.mode != "sequence":
            return self._fault
        steps = self._fault.steps
        return steps[min(self._step_index, len(steps) - 1)]

    def remember_request(self, summary: dict[str, Any]) -> None:
        with self._lock:
            self._last_request = summary

    # -- reading ---------------------------------------------------------------

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self._request_times)

    @property
    def request_times(self) -> list[float]:
        with self._lock:
            return list(self._request_times)

    @property
    def health_count(self) -> int:
        with self._lock:
            return self._health_count

    @property
    def fault(self) -> Fault:
        with self._lock:
            return self._fault

    @property
    def last_request(self) -> dict[str, Any] | None:
        with self._lock:
            return None if self._last_request is None else dict(self._last_request)

    def snapshot(self) -> dict[str, Any]:
        """JSON-ready state, as served by ``GET /_sim/state``."""
        with self._lock:
            state = self._fault.as_dict()
            state["request_count"] = len(self._request_times)
            state["health_count"] = self._health_count
            if self._fault.mode == "sequence":
                state["sequence_index"] = self._step_index
            return state
