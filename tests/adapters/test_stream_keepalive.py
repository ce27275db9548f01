"""A stream that ended cleanly gives its upstream connection back for the next call.

Dropping it would cost every chat a new TCP (and, with a real vendor, TLS)
handshake. Against a real HTTP/1.1 server on 127.0.0.1 that keeps connections
alive and streams with chunked encoding: a whole stream leaves its connection
in the pool; a stream whose body does not end promptly after its last event,
or that failed, has its connection dropped, and the answer is not held back
waiting for it.
"""

from __future__ import annotations

import json
import time

import pytest

from providers_app.adapters import ChatRequest, Message, ProviderError
from providers_app.adapters.transport import END_OF_BODY_WAIT_S

from .fault_server import Exchange

REQUEST = ChatRequest(messages=(Message("user", "Name three colours."),))
HEAD = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
END_OF_BODY = "0\r\n\r\n"


def _event(text: str | None = None, finish: str | None = None, *, done: bool = False) -> str:
    if done:
        data = "data: [DONE]\n\n"
    else:
        delta = {} if text is None else {"content": text}
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        payload = {"id": "c1", "object": "chat.completion.chunk", "choices": [choice]}
        data = f"data: {json.dumps(payload)}\n\n"
    return _chunk(data)


def _chunk(data: str) -> str:
    """`data` as one chunk of a chunked body."""
    return f"{len(data.encode()):x}\r\n{data}\r\n"


WHOLE_ANSWER = [_event("Red, "), _event("green, blue."), _event(finish="stop"), _event(done=True)]


def _keep_alive(*, end_after_s: float = 0.0, answers: list[list[str]] | None = None):
    """Answer each request on the connection with a stream (the next of
    `answers`, else a whole one), its end of body `end_after_s` after its last event."""
    queue = list(answers or [])

    def behaviour(exchange: Exchange) -> None:
        while True:
            behaviour.calls += 1
            exchange.send(HEAD + "".join(queue.pop(0) if queue else WHOLE_ANSWER))
            if not exchange.pause(end_after_s):
                return
            exchange.send(END_OF_BODY)
            exchange.read_request()  # the next call on this connection, or the client's close

    behaviour.calls = 0  # requests answered, over every connection
    return behaviour


def _text(adapter) -> str:
    deltas = list(adapter.stream(REQUEST, timeout=5, first_token_timeout=5, idle_timeout=5))
    assert deltas[-1].finish_reason == "stop"
    return "".join(delta.text for delta in deltas)


@pytest.fixture
def adapter(make_adapter, fault_server):
    return make_adapter("openai_compatible", base_url=fault_server.url + "/v1")


def test_streams_that_ended_share_one_connection(fault_server, adapter) -> None:
    served = _keep_alive()
    fault_server.serve(served)

    answers = [_text(adapter) for _ in range(3)]

    assert answers == ["Red, green, blue."] * 3
    assert served.calls == 3
    assert fault_server.connections_accepted == 1


def test_a_body_that_does_not_end_after_the_last_event_is_not_waited_for(
    fault_server, adapter
) -> None:
    fault_server.serve(_keep_alive(end_after_s=3.0))

    started = time.monotonic()
    answer = _text(adapter)
    elapsed = time.monotonic() - started
    second = _text(adapter)

    assert answer == second == "Red, green, blue."
    assert elapsed < 1.5  # not the 3 s until the end of the body
    assert END_OF_BODY_WAIT_S < 1.5
    assert fault_server.connections_accepted == 2  # the first one was dropped


def test_a_stream_that_failed_before_its_body_ended_drops_its_connection(
    fault_server, adapter
) -> None:
    # Three undecodable events end the stream as malformed; the rest of the body
    # is never read, so the connection cannot serve another call.
    garbage = [_chunk("data: {oops\n\n")] * 3
    served = _keep_alive(answers=[garbage + WHOLE_ANSWER])
    fault_server.serve(served)

    with pytest.raises(ProviderError):
        _text(adapter)
    assert _text(adapter) == "Red, green, blue."

    assert served.calls == 2
    assert fault_server.connections_accepted == 2
