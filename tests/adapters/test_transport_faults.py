"""Transport failures from a real HTTP server on 127.0.0.1 become the right category in time.

Each scenario runs against ``FaultServer`` (a raw-socket server the test scripts)
and asserts both the category and that it was reached within its limit plus a
small margin: wall-clock limits must hold even when the server trickles bytes
or keeps the connection warm with keep-alive comments.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Iterator

import pytest

from providers_app.adapters import Category, ChatRequest, Message, ProviderError, StreamDelta

from .fault_server import Exchange, free_port

MARGIN_S = 0.5
REQUEST = ChatRequest(messages=(Message("user", "Name three colours."),))
SSE_HEAD = {"Content-Type": "text/event-stream"}


def _chunk(text: str | None = None, finish: str | None = None) -> str:
    delta = {} if text is None else {"content": text}
    payload = {
        "id": "chatcmpl-local",
        "object": "chat.completion.chunk",
        "model": "local-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


def _complete_error(adapter, *, timeout: float) -> tuple[ProviderError, float]:
    started = time.monotonic()
    with pytest.raises(ProviderError) as caught:
        adapter.complete(REQUEST, timeout=timeout)
    return caught.value, time.monotonic() - started


def _stream_error(
    adapter, *, timeout: float = 5.0, first_token: float = 5.0, idle: float = 5.0
) -> tuple[ProviderError, list[StreamDelta], float]:
    received: list[StreamDelta] = []
    stream = adapter.stream(
        REQUEST, timeout=timeout, first_token_timeout=first_token, idle_timeout=idle
    )
    started = time.monotonic()
    with pytest.raises(ProviderError) as caught:
        received.extend(stream)
    return caught.value, received, time.monotonic() - started


@pytest.fixture
def local_adapter(make_adapter, fault_server):
    """An OpenAI-compatible adapter pointed at the fault server."""
    return make_adapter("openai_compatible", base_url=fault_server.url + "/v1")


def test_connection_refused_is_a_transport_error(make_adapter) -> None:
    adapter = make_adapter("openai_compatible", base_url=f"http://127.0.0.1:{free_port()}/v1")
    error, elapsed = _complete_error(adapter, timeout=2.0)
    assert error.category is Category.TRANSPORT
    assert error.message == "connection refused"
    assert elapsed < 2.0


def test_reset_before_any_response_is_a_transport_error(fault_server, local_adapter) -> None:
    fault_server.serve(Exchange.reset)
    error, elapsed = _complete_error(local_adapter, timeout=2.0)
    assert error.category is Category.TRANSPORT
    assert elapsed < 2.0


def test_reset_mid_body_is_a_transport_error(fault_server, local_adapter) -> None:
    def half_a_body_then_rst(exchange: Exchange) -> None:
        exchange.send_head(
            200, headers={"Content-Type": "application/json", "Content-Length": "2000"}
        )
        exchange.send('{"id": "chatcmpl-local", "choices": [{"message": {"content": "Lim')
        exchange.pause(0.1)
        exchange.reset()

    fault_server.serve(half_a_body_then_rst)
    error, elapsed = _complete_error(local_adapter, timeout=2.0)
    assert error.category is Category.TRANSPORT
    assert elapsed < 2.0


def test_reset_mid_stream_keeps_the_partial_text(fault_server, local_adapter) -> None:
    def one_delta_then_rst(exchange: Exchange) -> None:
        exchange.send_head(200, headers=SSE_HEAD)
        exchange.send(_chunk("Red,"))
        exchange.pause(0.1)
        exchange.reset()

    fault_server.serve(one_delta_then_rst)
    error, received, elapsed = _stream_error(local_adapter)
    assert error.category is Category.TRANSPORT
    assert error.output_produced is True
    assert error.partial_text == "Red,"
    assert [delta.text for delta in received] == ["Red,"]
    assert elapsed < 2.0


def test_silent_server_hits_the_read_timeout(fault_server, local_adapter) -> None:
    fault_server.serve(Exchange.hang)
    error, elapsed = _complete_error(local_adapter, timeout=0.5)
    assert error.category is Category.TIMEOUT
    assert elapsed < 0.5 + MARGIN_S


def test_trickling_body_is_cut_off_at_the_wall_clock_timeout(fault_server, local_adapter) -> None:
    """One byte every 50 ms resets a socket read timeout forever; the deadline still holds."""

    def trickle(exchange: Exchange) -> None:
        exchange.send_head(
            200, headers={"Content-Type": "application/json", "Content-Length": "500"}
        )
        for _ in range(500):
            exchange.send(b" ")
            if not exchange.pause(0.05):
                return

    fault_server.serve(trickle)
    error, elapsed = _complete_error(local_adapter, timeout=0.6)
    assert error.category is Category.TIMEOUT
    assert "0.6s timeout" in error.message
    assert 0.6 - 0.05 <= elapsed < 0.6 + MARGIN_S


ANTHROPIC_PREAMBLE = (
    'event: message_start\ndata: {"type": "message_start", "message": '
    '{"model": "claude-x", "usage": {"input_tokens": 9, "output_tokens": 1}}}\n\n'
)
ANTHROPIC_PING = 'event: ping\ndata: {"type": "ping"}\n\n'


@pytest.mark.parametrize(
    ("kind", "path", "preamble", "keepalive"),
    [
        pytest.param("openai_compatible", "/v1", _chunk(""), ": keep-alive\n\n", id="sse-comments"),
        pytest.param("anthropic", "", ANTHROPIC_PREAMBLE, ANTHROPIC_PING, id="anthropic-pings"),
    ],
)
def test_keepalives_do_not_reset_the_first_token_limit(
    fault_server, make_adapter, kind: str, path: str, preamble: str, keepalive: str
) -> None:
    def keepalives_forever(exchange: Exchange) -> None:
        exchange.send_head(200, headers=SSE_HEAD)
        exchange.send(preamble)  # preamble events are no output either
        while exchange.pause(0.05):
            exchange.send(keepalive)

    fault_server.serve(keepalives_forever)
    adapter = make_adapter(kind, base_url=fault_server.url + path)
    error, received, elapsed = _stream_error(adapter, first_token=0.4)
    assert error.category is Category.TIMEOUT
    assert "first-token" in error.message
    assert error.output_produced is False
    assert received == []
    assert 0.4 - 0.05 <= elapsed < 0.4 + MARGIN_S


def test_keepalive_comments_do_not_reset_the_idle_limit(fault_server, local_adapter) -> None:
    def one_delta_then_keepalives(exchange: Exchange) -> None:
        exchange.send_head(200, headers=SSE_HEAD)
        exchange.send(_chunk("Blue"))
        while exchange.pause(0.05):
            exchange.send(": OPENROUTER PROCESSING\n\n")

    fault_server.serve(one_delta_then_keepalives)
    error, _, elapsed = _stream_error(local_adapter, first_token=2.0, idle=0.4)
    assert error.category is Category.TIMEOUT
    assert "idle" in error.message
    assert error.output_produced is True
    assert error.partial_text == "Blue"
    assert elapsed < 0.4 + MARGIN_S


def test_silence_after_keepalives_still_ends_at_the_first_token_limit(
    fault_server, local_adapter
) -> None:
    """The socket timeout is re-armed from the clock, not left at its value from the start."""

    def keepalives_then_silence(exchange: Exchange) -> None:
        exchange.send_head(200, headers=SSE_HEAD)
        for _ in range(9):
            exchange.send(": keep-alive\n\n")
            exchange.pause(0.05)
        exchange.hang()

    fault_server.serve(keepalives_then_silence)
    error, _, elapsed = _stream_error(local_adapter, first_token=0.5)
    assert error.category is Category.TIMEOUT
    # Left at its starting 0.5 s, the socket timeout would only fire at ~0.95 s.
    assert elapsed < 0.5 + 0.3


def test_fully_silent_stream_is_caught_by_the_socket_timeout(fault_server, local_adapter) -> None:
    def headers_then_silence(exchange: Exchange) -> None:
        exchange.send_head(200, headers=SSE_HEAD)
        exchange.hang()

    fault_server.serve(headers_then_silence)
    error, _, elapsed = _stream_error(local_adapter, first_token=0.4)
    assert error.category is Category.TIMEOUT
    assert "first-token" in error.message
    assert elapsed < 0.4 + MARGIN_S


def test_stream_without_headers_is_caught_by_the_first_token_limit(
    fault_server, local_adapter
) -> None:
    fault_server.serve(Exchange.hang)
    error, _, elapsed = _stream_error(local_adapter, first_token=0.4)
    assert error.category is Category.TIMEOUT
    assert elapsed < 0.4 + MARGIN_S


def test_stream_ending_without_terminator_is_truncated(fault_server, local_adapter) -> None:
    def two_deltas_then_fin(exchange: Exchange) -> None:
        exchange.send_head(200, headers=SSE_HEAD)
        exchange.send(_chunk("Green") + _chunk(" and"))
        # Connection: close -> the handler closes cleanly (FIN) on return.

    fault_server.serve(two_deltas_then_fin)
    error, _, elapsed = _stream_error(local_adapter)
    assert error.category is Category.TRANSPORT
    assert "truncated" in error.message
    assert error.output_produced is True
    assert error.partial_text == "Green and"
    assert elapsed < 2.0


def test_invalid_json_in_a_200_is_a_malformed_response(fault_server, local_adapter) -> None:
    fault_server.serve(
        lambda exchange: exchange.send_response(
            200, '{"id": "chatcmpl-local", "choices": [', content_type="application/json"
        )
    )
    error, _ = _complete_error(local_adapter, timeout=2.0)
    assert error.category is Category.MALFORMED_RESPONSE
    assert error.status_code == 200


def test_html_502_from_a_gateway_is_a_server_error(fault_server, local_adapter) -> None:
    page = (
        "<html><head><title>502 Bad Gateway</title></head>"
        "<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>"
    )
    fault_server.serve(
        lambda exchange: exchange.send_response(
            502, page, content_type="text/html", reason="Bad Gateway"
        )
    )
    error, _ = _complete_error(local_adapter, timeout=2.0)
    assert error.category is Category.SERVER_ERROR
    assert error.status_code == 502
    assert "502 Bad Gateway" in error.message
    assert "<" not in error.message


def test_chunked_stream_with_split_utf8_and_crlf_decodes_intact(
    fault_server, local_adapter
) -> None:
    """Events cut mid-line and mid-character by the network still decode per whole line."""
    body = (_chunk("Jalapeño ") + _chunk("crème brûlée") + _chunk(finish="stop")).replace(
        "\n", "\r\n"
    ) + "data: [DONE]\r\n\r\n"
    raw = body.encode()
    cut = raw.index("ñ".encode()) + 1  # inside the two-byte ñ

    def chunked(exchange: Exchange) -> None:
        exchange.send_head(200, headers={**SSE_HEAD, "Transfer-Encoding": "chunked"})
        for piece in (raw[:cut], raw[cut : cut + 7], raw[cut + 7 :]):
            exchange.send(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            exchange.pause(0.02)
        exchange.send(b"0\r\n\r\n")

    fault_server.serve(chunked)
    deltas = list(
        local_adapter.stream(REQUEST, timeout=5.0, first_token_timeout=5.0, idle_timeout=5.0)
    )
    assert "".join(delta.text for delta in deltas) == "Jalapeño crème brûlée"
    assert deltas[-1].finish_reason == "stop"


def test_success_over_a_real_socket_returns_the_connection_to_the_pool(
    fault_server, local_adapter
) -> None:
    completion = {
        "id": "chatcmpl-local",
        "model": "local-model",
        "choices": [{"index": 0, "message": {"content": "Lima."}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2},
    }
    fault_server.serve(
        lambda exchange: exchange.send_response(
            200, json.dumps(completion), content_type="application/json"
        )
    )
    result = local_adapter.complete(REQUEST, timeout=2.0)
    assert (result.text, result.finish_reason, result.input_tokens) == ("Lima.", "stop", 5)
    assert fault_server.requests[0].path == "/v1/chat/completions"


def test_gzip_encoded_body_is_decoded(fault_server, local_adapter) -> None:
    completion = {
        "model": "m",
        "choices": [{"message": {"content": "¡Hola!"}, "finish_reason": "stop"}],
    }
    packed = gzip.compress(json.dumps(completion).encode())

    def gzipped(exchange: Exchange) -> None:
        exchange.send_head(
            200,
            headers={
                "Content-Type": "application/json",
                "Content-Encoding": "gzip",
                "Content-Length": str(len(packed)),
            },
        )
        exchange.send(packed)

    fault_server.serve(gzipped)
    assert local_adapter.complete(REQUEST, timeout=2.0).text == "¡Hola!"


def test_closing_the_stream_generator_closes_the_connection(fault_server, local_adapter) -> None:
    client_gone = threading.Event()

    def endless_stream(exchange: Exchange) -> None:
        exchange.send_head(200, headers=SSE_HEAD)
        try:
            while exchange.pause(0.02):
                exchange.send(_chunk("la "))
        except OSError:
            client_gone.set()

    fault_server.serve(endless_stream)
    stream: Iterator[StreamDelta] = local_adapter.stream(
        REQUEST, timeout=5.0, first_token_timeout=5.0, idle_timeout=5.0
    )
    assert next(stream).text == "la "
    stream.close()  # type: ignore[attr-defined]
    assert client_gone.wait(2.0), "the server kept writing to an open connection"
