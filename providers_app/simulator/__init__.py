"""Local fault-injecting OpenAI-compatible upstream (stdlib only, no Django).

``UpstreamSimulator`` serves ``POST /v1/chat/completions`` and ``GET /v1/models``
on a background thread; ``set_fault(mode, **options)`` switches what the next
requests get:

=================  ==========================================================
ok                 200 chat.completion / SSE stream; text, delay_s,
                   chunk_delay_s, finish_reason
error              OpenAI error body; status (500), message, type, code,
                   param, retry_after, retry_after_ms, headers
rate_limit         429 rate_limit_exceeded; retry_after ("1", None omits),
                   retry_after_ms, message, headers
quota              429 insufficient_quota; retry_after, retry_after_ms,
                   message, headers
hang               no answer until set_fault/reset/stop, or seconds
reset              RST after reading the request
reset_mid_body     headers, part of the body, then RST; chunks_before, pause_s
garbage            200 application/json that is not JSON; body
html_502           nginx-style HTML error page; status (502)
slow_first_token   keep-alives for delay_s every interval_s, then the answer
midstream_error    stream: chunks_before chunks then an error event, no [DONE]
truncate_stream    stream: chunks, then EOF with no finish_reason or [DONE]
stall_stream       stream: chunks, silence for seconds (30), then the rest
reject_prefill     400 to a request ending in an assistant message; status,
                   message; any other request is answered as by ok
malformed_events   stream: chunks_before chunks, count undecodable events,
                   then the rest of the answer and [DONE]
sequence           steps=[{"mode": ..., "options": {...}}, ...]; last repeats
=================  ==========================================================

A healthy answer to a request ending in an assistant message (a prefill)
is the rest of the answer after that text, as a model that continues a
partial answer gives it, when the request speaks the simulator's continuation
dialect (``UpstreamSimulator(continuation=...)`` or ``set_continuation``):
``trailing_assistant`` (the default) continues any trailing assistant message;
``vllm`` only with ``continue_final_message: true, add_generation_prompt: false``
(both true: 400, as vLLM), otherwise answers afresh; ``prefix`` only with
``prefix: true`` on that message (without it: Mistral's 400); ``none`` always
answers afresh, as OpenAI does. ``last_request["body"]`` holds the bytes received.

``POST /_sim/fault``, ``GET /_sim/state`` and ``POST /_sim/reset`` do the same
from another process.
"""

from .faults import FAULT_MODES, HEALTH_FAULT_MODES, Fault, FaultConfigError
from .server import DEMO_SPECS, SimulatorSpec, UpstreamSimulator, run_simulators

__all__ = [
    "DEMO_SPECS",
    "FAULT_MODES",
    "HEALTH_FAULT_MODES",
    "Fault",
    "FaultConfigError",
    "SimulatorSpec",
    "UpstreamSimulator",
    "run_simulators",
]
