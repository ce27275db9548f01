"""HTTP request handler of the upstream simulator: routing and fault behaviour.

One handler instance serves one connection (HTTP/1.1 keep-alive), on its own
daemon thread. Routes:

- ``POST /v1/chat/completions``: chat requests, subject to the active fault.
- ``GET /v1/models`` and ``GET /v1/models/{id}``: health requests; they obey
  only the faults in ``HEALTH_FAULT_MODES``.
- ``GET /_sim/state``, ``POST /_sim/fault``, ``POST /_sim/reset``, ``GET /_sim``:
  the control API, never faulted and never counted.
"""

from __future__ import annotations

import html
import json
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

from . import payloads
from .answers import Answer, plan_answer
from .faults import HEALTH_FAULT_MODES, FaultConfigError, SimulatorState, Ticket, parse_fault
from .schedule import ScheduleRunner

logger = logging.getLogger(__name__)

_DEFAULT_MODEL = "simulated-model"
_SSE_CONTENT_TYPE = "text/event-stream; charset=utf-8"
_JSON_CONTENT_TYPE = "application/json"
# A chunk cut off mid-object, as a proxy that flushed half a write sends it.
_UNDECODABLE_EVENT = '{"choices":[{"index":0,"delta":{"content":'
# SO_LINGER on with a zero timeout makes close() send RST instead of FIN.
_LINGER_RST = struct.pack("ii", 1, 0)


@dataclass
class SimulatorContext:
    """What every handler thread of one simulator shares."""

    name: str
    model: str | None
    state: SimulatorState = field(default_factory=SimulatorState)
    # Set by stop(): every delay and keep-alive loop waits on it, so stop()
    # never has to wait for a slow answer to finish.
    stopping: threading.Event = field(default_factory=threading.Event)
    # Set while the simulator follows a fault schedule (the demo's primary).
    schedule: ScheduleRunner | None = None
    # How this server continues a partial answer (see CONTINUATION_DIALECTS).
    continuation: str = "trailing_assistant"

    @property
    def default_text(self) -> str:
        return f"Hello from {self.name}."


@dataclass
class Call:
    """One faultable request, parsed: what a healthy upstream would do with it."""

    ticket: Ticket
    model: str
    success_payload: dict[str, Any]
    stream: bool = False
    include_usage: bool = False
    prompt_tokens: int = 0
    answer: Answer | None = None  # what a healthy upstream says to this request
    # The text of a trailing assistant message: a healthy upstream continues it.
    prefill: str | None = None

    def option(self, name: str) -> Any:
        return self.ticket.fault.option(name)


class _BadRequest(Exception):
    """The request body is unusable; answered with an OpenAI-style 400."""

    def __init__(self, message: str, *, param: str | None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class SimulatorHandler(BaseHTTPRequestHandler):
    """Serves one connection of an ``UpstreamSimulator``."""

    protocol_version = "HTTP/1.1"
    server_version = "upstream-simulator/1.0"
    sys_version = ""

    _FAULTS: ClassVar[dict[str, Callable[[SimulatorHandler, Call], None]]] = {}

    request_id: str = ""

    # -- plumbing --------------------------------------------------------------

    def setup(self) -> None:
        super().setup()
        # Headers and body (and each SSE event) go out as separate writes;
        # with Nagle on, the client's delayed ACK would add ~40 ms to each.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    @property
    def ctx(self) -> SimulatorContext:
        return self.server.context  # type: ignore[attr-defined]

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        # The stdlib writes an access log line to stderr per request; tests and
        # the benchmark would drown in it.
        logger.debug("%s %s", self.ctx.name, format % args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        self.request_id = payloads.new_request_id()
        path = unquote(urlsplit(self.path).path).rstrip("/") or "/"
        try:
            body = self._read_body()
            self._route(method, path, body)
        except OSError:
            # The client went away, or stop() shut the socket: nothing to answer.
            self.close_connection = True

    def _route(self, method: str, path: str, body: bytes) -> None:
        if method == "POST" and path == "/v1/chat/completions":
            self._chat(body)
        elif method == "GET" and path == "/v1/models":
            self._health(None)
        elif method == "GET" and path.startswith("/v1/models/"):
            self._health(path.removeprefix("/v1/models/"))
        elif path.startswith("/_sim"):
            self._control(method, path, body)
        else:
            message = f"Invalid URL ({method} {path})"
            self._send_json(404, payloads.invalid_request(message, param=None))

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked_body()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _read_chunked_body(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                # Trailer section: lines up to the blank one.
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(parts)
            parts.append(self.rfile.read(size))
            self.rfile.readline()  # CRLF after each chunk

    # -- writing ---------------------------------------------------------------

    def _send_head(
        self,
        status: int,
        content_type: str,
        *,
        content_length: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if content_length is None:
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Cache-Control", "no-cache")
        else:
            self.send_header("Content-Length", str(content_length))
        self.send_header("x-request-id", self.request_id)
        self.send_header("openai-processing-ms", "1")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()

    def _send_bytes(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self._send_head(status, content_type, content_length=len(body), headers=headers)
        self.wfile.write(body)

    def _send_json(
        self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        self._send_bytes(status, _dumps(payload), _JSON_CONTENT_TYPE, headers)

    def _write_chunk(self, data: bytes) -> None:
        """One HTTP/1.1 chunk; each is written at once so the client sees it now."""
        if data:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _end_chunks(self) -> None:
        self.wfile.write(b"0\r\n\r\n")

    def _send_event(self, payload: dict[str, Any] | str) -> None:
        data = payload.encode() if isinstance(payload, str) else _dumps(payload)
        self._write_chunk(b"data: " + data + b"\n\n")

    def _pause(self, seconds: float) -> bool:
        """Sleep unless the simulator stops; on stop, drop the connection."""
        if seconds <= 0:
            return True
        if self.ctx.stopping.wait(seconds):
            self._abort(rst=False)
            return False
        return True

    def _abort(self, *, rst: bool) -> None:
        """Close the connection without (finishing) an answer; RST or FIN."""
        self.close_connection = True
        try:
            if rst:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
            # rfile holds a reference to the socket (makefile); the fd only
            # really closes, and the RST only goes out, once both are closed.
            self.rfile.close()
            self.connection.close()
        except OSError:
            pass

    # -- chat requests ---------------------------------------------------------

    def _chat(self, body: bytes) -> None:
        ticket = self.ctx.state.begin_chat()
        try:
            call = self._parse_chat(ticket, body)
        except _BadRequest as error:
            # Counted but not faulted: a malformed request is the caller's
            # error on every upstream, healthy or not.
            self._send_json(400, payloads.invalid_request(error.message, param=error.param))
            return
        self._FAULTS[ticket.fault.mode](self, call)

    def _parse_chat(self, ticket: Ticket, body: bytes) -> Call:
        try:
            request = json.loads(body or b"null")
        except ValueError:
            request = None
        if not isinstance(request, dict):
            raise _BadRequest(
                "We could not parse the JSON body of your request. The OpenAI API expects "
                "a JSON payload.",
                param=None,
            )
        messages = request.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _BadRequest("Missing required parameter: 'messages'.", param="messages")
        stream = request.get("stream", False)
        if stream is not None and not isinstance(stream, bool):
            raise _BadRequest("Invalid type for 'stream': expected a boolean.", param="stream")
        stream_options = request.get("stream_options") or {}
        model = self._response_model(request.get("model"))
        prompt_tokens = payloads.prompt_words(messages)
        self.ctx.state.remember_request(
            {
                "path": self.path,
                "headers": dict(self.headers.items()),
                "json": request,
                "body": body,  # the bytes as received
            }
        )
        prefill = _continued_text(request, messages, self.ctx.continuation)
        answer = plan_answer(request, self.ctx.default_text)
        return Call(
            prefill=prefill,
            ticket=ticket,
            model=model,
            answer=answer,
            success_payload=self._completion(model, answer.text, "stop", prompt_tokens),
            stream=bool(stream),
            include_usage=isinstance(stream_options, dict)
            and stream_options.get("include_usage") is True,
            prompt_tokens=prompt_tokens,
        )

    def _response_model(self, requested: Any) -> str:
        """The configured model, else the requested one (as a real upstream echoes it)."""
        if self.ctx.model:
            return self.ctx.model
        return requested if isinstance(requested, str) and requested else _DEFAULT_MODEL

    def _completion(
        self, model: str, text: str, finish_reason: str, prompt_tokens: int
    ) -> dict[str, Any]:
        return payloads.chat_completion(
            completion_id=payloads.new_completion_id(),
            model=model,
            text=text,
            finish_reason=finish_reason,
            usage_=payloads.usage(prompt_tokens, payloads.count_words(text)),
        )

    def _text(self, call: Call) -> str:
        text = call.option("text")
        if text is None:
            text = call.answer.text if call.answer else self.ctx.default_text
        return _continuation(text, call.prefill)

    def _tool_call(self, call: Call) -> dict[str, Any] | None:
        """The tool call a healthy upstream makes here (none when ``text`` is forced)."""
        if call.option("text") is not None or call.answer is None:
            return None
        return call.answer.tool_call

    def _chunks(self, call: Call) -> payloads.ChunkFactory:
        return payloads.ChunkFactory(
            completion_id=payloads.new_completion_id(),
            model=call.model,
            include_usage=call.include_usage,
        )

    def _start_stream(self) -> None:
        self._send_head(200, _SSE_CONTENT_TYPE)

    def _stream_answer(
        self, call: Call, text: str, *, finish_reason: str = "stop", chunk_delay_s: float = 0.0
    ) -> None:
        """A complete, well-formed stream, after the headers were sent."""
        chunks = self._chunks(call)
        self._send_event(chunks.role())
        for piece in payloads.split_words(text):
            if not self._pause(chunk_delay_s):
                return
            self._send_event(chunks.content(piece))
        self._send_event(chunks.finish(finish_reason))
        if call.include_usage:
            usage = payloads.usage(call.prompt_tokens, payloads.count_words(text))
            self._send_event(chunks.usage(usage))
        self._send_event("[DONE]")
        self._end_chunks()

    def _stream_prefix(self, call: Call, text: str, count: int | None) -> None:
        """Role chunk and the first ``count`` content chunks (all when None)."""
        chunks = self._chunks(call)
        self._send_event(chunks.role())
        for piece in payloads.split_words(text)[:count]:
            self._send_event(chunks.content(piece))

    # -- fault behaviours (one per mode) ---------------------------------------

    def _fault_ok(self, call: Call) -> None:
        if not self._pause(call.option("delay_s")):
            return
        text, finish_reason = self._text(call), call.option("finish_reason")
        tool_call = self._tool_call(call)
        if tool_call is not None:
            self._answer_tool_call(call, tool_call)
            return
        if call.stream:
            self._start_stream()
            self._stream_answer(
                call, text, finish_reason=finish_reason, chunk_delay_s=call.option("chunk_delay_s")
            )
        else:
            completion = self._completion(call.model, text, finish_reason, call.prompt_tokens)
            self._send_json(200, completion)

    def _answer_tool_call(self, call: Call, tool_call: dict[str, Any]) -> None:
        """A tool call, as OpenAI sends one: whole, or streamed as argument fragments."""
        call_id = payloads.new_tool_call_id()
        if not call.stream:
            completion = self._completion(call.model, "", "tool_calls", call.prompt_tokens)
            message = completion["choices"][0]["message"]
            message["content"] = None
            message["tool_calls"] = [payloads.tool_call(call_id, **tool_call)]
            self._send_json(200, completion)
            return
        self._start_stream()
        chunks = self._chunks(call)
        self._send_event(chunks.role())
        self._send_event(chunks.tool_call_start(call_id, tool_call["name"]))
        for piece in payloads.split_fragments(tool_call["arguments"]):
            self._send_event(chunks.tool_call_arguments(piece))
        self._send_event(chunks.finish("tool_calls"))
        if call.include_usage:
            self._send_event(chunks.usage(payloads.usage(call.prompt_tokens, 1)))
        self._send_event("[DONE]")
        self._end_chunks()

    def _fault_error(self, call: Call) -> None:
        status = call.option("status")
        body = payloads.error_body(
            status,
            model=call.model,
            request_id=self.request_id,
            message=call.option("message"),
            type_=call.option("type"),
            code=call.option("code"),
            param=call.option("param"),
        )
        self._send_json(status, body, self._hint_headers(call))

    def _fault_rate_limit(self, call: Call) -> None:
        body = payloads.rate_limit_body(model=call.model, message=call.option("message"))
        self._send_json(429, body, self._hint_headers(call))

    def _fault_quota(self, call: Call) -> None:
        body = payloads.quota_body(message=call.option("message"))
        self._send_json(429, body, self._hint_headers(call))

    def _hint_headers(self, call: Call) -> dict[str, str]:
        headers = dict(call.option("headers"))
        if call.option("retry_after") is not None:
            headers["Retry-After"] = call.option("retry_after")
        if call.option("retry_after_ms") is not None:
            headers["retry-after-ms"] = call.option("retry_after_ms")
        return headers

    def _fault_hang(self, call: Call) -> None:
        # Released early by set_fault(), reset() or stop(); then, or after
        # ``seconds``, the connection closes with no answer at all.
        call.ticket.release.wait(timeout=call.option("seconds"))
        self._abort(rst=False)

    def _fault_reset(self, call: Call) -> None:
        self._abort(rst=True)

    def _fault_reset_mid_body(self, call: Call) -> None:
        if call.stream:
            self._start_stream()
            self._stream_prefix(call, self.ctx.default_text, call.option("chunks_before"))
        else:
            body = _dumps(call.success_payload)
            self._send_head(200, _JSON_CONTENT_TYPE, content_length=len(body))
            self.wfile.write(body[: len(body) // 2])
        # Let the client take in what was sent, so the RST lands mid-body
        # rather than racing the headers.
        if self._pause(call.option("pause_s")):
            self._abort(rst=True)

    def _fault_garbage(self, call: Call) -> None:
        self._send_bytes(200, call.option("body").encode(), _JSON_CONTENT_TYPE)

    def _fault_html_502(self, call: Call) -> None:
        status = call.option("status")
        self._send_bytes(status, payloads.gateway_html(status).encode(), "text/html")

    def _fault_slow_first_token(self, call: Call) -> None:
        # Like DeepSeek under load: answer 200 at once, then keep the
        # connection busy with keep-alives (SSE comments, or blank lines before
        # a JSON body) that reset a per-read timeout without carrying output.
        interval = call.option("interval_s")
        deadline = time.monotonic() + call.option("delay_s")
        self._send_head(200, _SSE_CONTENT_TYPE if call.stream else _JSON_CONTENT_TYPE)
        keep_alive = b": keep-alive\n\n" if call.stream else b"\n"
        while (left := deadline - time.monotonic()) > 0:
            self._write_chunk(keep_alive)
            if not self._pause(min(interval, left)):
                return
        text = self._text(call)
        if call.stream:
            self._stream_answer(call, text)
        else:
            completion = self._completion(call.model, text, "stop", call.prompt_tokens)
            self._write_chunk(_dumps(completion))
            self._end_chunks()

    def _fault_midstream_error(self, call: Call) -> None:
        if not call.stream:
            self._FAULTS["error"](self, self._with_options(call, "error", {"status": 500}))
            return
        self._start_stream()
        self._stream_prefix(call, self._text(call), call.option("chunks_before"))
        self._send_event(payloads.midstream_error_event(message=call.option("message")))
        self._end_chunks()
        self.close_connection = True

    def _fault_truncate_stream(self, call: Call) -> None:
        if call.stream:
            self._start_stream()
            self._stream_prefix(call, self._text(call), call.option("chunks"))
            self._end_chunks()
        else:
            # The non-streaming equivalent: a body cut short by a clean close
            # (FIN), unlike reset_mid_body's RST.
            body = _dumps(call.success_payload)
            self._send_head(200, _JSON_CONTENT_TYPE, content_length=len(body))
            self.wfile.write(body[: len(body) // 2])
        self.close_connection = True

    def _fault_stall_stream(self, call: Call) -> None:
        if not call.stream:
            self._fault_ok(self._with_options(call, "ok", {"text": call.option("text")}))
            return
        pieces = payloads.split_words(self._text(call))
        count = call.option("chunks")
        self._start_stream()
        chunks = self._chunks(call)
        self._send_event(chunks.role())
        for piece in pieces[:count]:
            self._send_event(chunks.content(piece))
        # Silent, but the connection stays open: only the client's idle limit ends it.
        if call.ticket.release.wait(timeout=call.option("seconds")) or self.ctx.stopping.is_set():
            self._abort(rst=False)
            return
        for piece in pieces[count:]:
            self._send_event(chunks.content(piece))
        self._send_event(chunks.finish("stop"))
        self._send_event("[DONE]")
        self._end_chunks()

    def _fault_reject_prefill(self, call: Call) -> None:
        if call.prefill is None:
            self._fault_ok(self._with_options(call, "ok", {"text": call.option("text")}))
            return
        status = call.option("status")
        body = payloads.invalid_request(call.option("message"), param="messages")
        self._send_json(status, body)

    def _fault_malformed_events(self, call: Call) -> None:
        """A whole answer with ``count`` undecodable events after ``chunks_before``."""
        if not call.stream:
            self._fault_ok(call)  # an event is a stream's unit: nothing to spoil here
            return
        text, before = self._text(call), call.option("chunks_before")
        self._start_stream()
        self._stream_prefix(call, text, before)
        for _ in range(call.option("count")):
            self._send_event(_UNDECODABLE_EVENT)
        chunks = self._chunks(call)
        for piece in payloads.split_words(text)[before:]:
            self._send_event(chunks.content(piece))
        self._send_event(chunks.finish("stop"))
        self._send_event("[DONE]")
        self._end_chunks()

    def _with_options(self, call: Call, mode: str, options: dict[str, Any]) -> Call:
        fault = parse_fault(mode, options)
        return Call(
            ticket=Ticket(fault, call.ticket.release),
            model=call.model,
            success_payload=call.success_payload,
            stream=call.stream,
            include_usage=call.include_usage,
            prompt_tokens=call.prompt_tokens,
            answer=call.answer,
            prefill=call.prefill,
        )

    # -- health requests -------------------------------------------------------

    def _health(self, model_id: str | None) -> None:
        ticket = self.ctx.state.begin_health()
        model = self.ctx.model or model_id or _DEFAULT_MODEL
        if self.ctx.model and model_id is not None and model_id != self.ctx.model:
            body = payloads.error_body(404, model=model_id, request_id=self.request_id)
            self._send_json(404, body)
            return
        payload = payloads.models_list(model) if model_id is None else payloads.model_object(model)
        if ticket.fault.mode in HEALTH_FAULT_MODES:
            call = Call(ticket=ticket, model=model, success_payload=payload)
            self._FAULTS[ticket.fault.mode](self, call)
        else:
            self._send_json(200, payload)

    # -- control API -----------------------------------------------------------

    def _control(self, method: str, path: str, body: bytes) -> None:
        state = self.ctx.state
        if method == "GET" and path == "/_sim/state":
            self._send_json(200, self._state())
        elif method == "POST" and path == "/_sim/reset":
            state.reset()
            self._send_json(200, self._state())
        elif method == "POST" and path == "/_sim/fault":
            self._control_set_fault(body)
        elif method == "GET" and path == "/_sim":
            page = _control_page(self.ctx.name, self.ctx.schedule)
            self._send_bytes(200, page.encode(), "text/html; charset=utf-8")
        else:
            message = f"Invalid URL ({method} {path})"
            self._send_json(404, payloads.invalid_request(message, param=None))

    def _control_set_fault(self, body: bytes) -> None:
        try:
            request = json.loads(body or b"null")
        except ValueError:
            request = None
        try:
            if not isinstance(request, dict):
                raise FaultConfigError("body must be a JSON object", param="body")
            extra = sorted(set(request) - {"mode", "options"})
            if extra:
                raise FaultConfigError(f"unknown field {extra[0]!r}", param=extra[0])
            if "mode" not in request:
                raise FaultConfigError("mode is required", param="mode")
            fault = parse_fault(request["mode"], request.get("options") or {})
        except FaultConfigError as error:
            self._send_json(400, payloads.invalid_request(error.message, param=error.param))
            return
        self.ctx.state.set_fault(fault)
        logger.info("simulator %s: fault set to %s", self.ctx.name, fault.mode)
        self._send_json(200, self._state())

    def _state(self) -> dict[str, Any]:
        state = {"name": self.ctx.name, "model": self.ctx.model, **self.ctx.state.snapshot()}
        if self.ctx.schedule is not None:
            state["schedule"] = self.ctx.schedule.status()
        return state


SimulatorHandler._FAULTS = {
    "ok": SimulatorHandler._fault_ok,
    "error": SimulatorHandler._fault_error,
    "rate_limit": SimulatorHandler._fault_rate_limit,
    "quota": SimulatorHandler._fault_quota,
    "hang": SimulatorHandler._fault_hang,
    "reset": SimulatorHandler._fault_reset,
    "reset_mid_body": SimulatorHandler._fault_reset_mid_body,
    "garbage": SimulatorHandler._fault_garbage,
    "html_502": SimulatorHandler._fault_html_502,
    "slow_first_token": SimulatorHandler._fault_slow_first_token,
    "midstream_error": SimulatorHandler._fault_midstream_error,
    "truncate_stream": SimulatorHandler._fault_truncate_stream,
    "stall_stream": SimulatorHandler._fault_stall_stream,
    "reject_prefill": SimulatorHandler._fault_reject_prefill,
    "malformed_events": SimulatorHandler._fault_malformed_events,
}


# The continuation dialects a simulator can speak, as the servers named do:
CONTINUATION_DIALECTS = (
    "none",  # OpenAI: a trailing assistant message is history; a new answer starts
    "trailing_assistant",  # Groq, OpenRouter, llama.cpp, Claude before 4.6
    "vllm",  # continue_final_message: true with add_generation_prompt: false
    "prefix",  # Mistral, DeepSeek (beta): prefix: true on the last assistant message
)
VLLM_BOTH_FLAGS = "Cannot set both `continue_final_message` and `add_generation_prompt` to True."
MISTRAL_NO_PREFIX = (
    "Expected last role User or Tool (or Assistant with prefix True) for serving but got assistant"
)


def _continued_text(request: dict[str, Any], messages: list[Any], dialect: str) -> str | None:
    """The partial answer this server continues, None when it answers afresh;
    raises _BadRequest where the real server answers 400."""
    prefill = _prefill(messages)
    if dialect == "none":
        return None
    if dialect == "vllm":
        if request.get("continue_final_message") is True:
            if request.get("add_generation_prompt", True) is not False:
                raise _BadRequest(VLLM_BOTH_FLAGS, param=None)
            return prefill
        return None  # the chat template closes the assistant turn: a new answer
    if dialect == "prefix":
        if prefill is None:
            return None
        if messages[-1].get("prefix") is not True:
            raise _BadRequest(MISTRAL_NO_PREFIX, param="messages")
        return prefill
    return prefill


def _prefill(messages: list[Any]) -> str | None:
    """The text of a trailing assistant message without tool calls, else None."""
    last = messages[-1] if messages else None
    if not isinstance(last, dict) or last.get("role") != "assistant" or last.get("tool_calls"):
        return None
    content = last.get("content")
    if isinstance(content, list):
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else None


def _continuation(text: str, prefill: str | None) -> str:
    """What follows ``prefill`` in ``text``: a model continuing a partial answer.

    A prefill with its trailing whitespace stripped (as Anthropic requires) is
    continued from the same place, so the whitespace comes first.
    """
    if not prefill:
        return text
    if text.startswith(prefill):
        return text[len(prefill) :]
    return text  # not our own partial answer: a fresh one, as some models do


def _dumps(payload: dict[str, Any]) -> bytes:
    # Compact, like OpenAI's own bodies and SSE events.
    return json.dumps(payload, separators=(",", ":")).encode()


def _schedule_html(schedule: ScheduleRunner | None) -> str:
    if schedule is None:
        return ""
    rows = "\n".join(f"<li>{html.escape(line)}</li>" for line in schedule.schedule.describe())
    return (
        "<h2>Fault schedule</h2><p>This upstream switches its fault by itself; a fault "
        "set here lasts until the next phase. Now: <b id='phase'></b></p>"
        f"<ol style='font-family: monospace'>{rows}</ol>"
    )


def _control_page(name: str, schedule: ScheduleRunner | None = None) -> str:
    """A bare page with one button per common fault, for switching by hand in a demo."""
    name = html.escape(name)
    buttons = [
        ("ok", {}),
        ("error 500", {"mode": "error", "options": {"status": 500}}),
        ("error 503", {"mode": "error", "options": {"status": 503}}),
        ("rate_limit", {"mode": "rate_limit", "options": {"retry_after": "5"}}),
        ("quota", {"mode": "quota"}),
        ("hang 30 s", {"mode": "hang", "options": {"seconds": 30}}),
        ("reset", {"mode": "reset"}),
        ("html_502", {"mode": "html_502"}),
        ("slow_first_token 5 s", {"mode": "slow_first_token", "options": {"delay_s": 5}}),
        ("midstream_error", {"mode": "midstream_error"}),
    ]
    html_buttons = "\n".join(
        f"<button onclick='setFault({html.escape(json.dumps(spec or {'mode': 'ok'}))})'>"
        f"{label}</button>"
        for label, spec in buttons
    )
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Simulator {name}</title></head>
<body style="font-family: sans-serif">
<h1>Upstream simulator: {name}</h1>
{_schedule_html(schedule)}
{html_buttons}
<button onclick="post('/_sim/reset', null)">reset counters</button>
<pre id="state"></pre>
<script>
async function show(response) {{
  const state = await response.json();
  document.getElementById('state').textContent = JSON.stringify(state, null, 2);
  const phase = document.getElementById('phase');
  if (phase && state.schedule) {{
    phase.textContent = state.schedule.phase + ' (' + state.schedule.phase_remaining_s + ' s left)';
  }}
}}
async function post(path, body) {{
  show(await fetch(path, {{method: 'POST', body: body && JSON.stringify(body),
    headers: {{'Content-Type': 'application/json'}}}}));
}}
function setFault(spec) {{ post('/_sim/fault', spec); }}
fetch('/_sim/state').then(show);
setInterval(() => fetch('/_sim/state').then(show), 2000);
</script>
</body></html>
"""
