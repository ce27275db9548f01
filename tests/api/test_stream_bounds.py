"""Issue 22 finding 3 through HTTP: the memory one stream may hold, and the
upstream read after the client hangs up (docs/engine.md, "Bounded work per
request").

The hostile upstream is a real local HTTP server (tests/adapters/fault_server.py)
as the primary; the secondary is a simulator. Memory is asserted as the bytes
Python allocated while the request ran (tracemalloc's peak), against the caps in
force (production defaults), never as a timing.
"""

import json
import select
import socket
import time
import tracemalloc

import pytest

from providers_app.conf import DEFAULTS
from providers_app.models import BreakerState, FailoverEvent
from tests.adapters.fault_server import FaultServer
from tests.factories import provider_create

URL = "/v1/chat/completions"
HELLO = [{"role": "user", "content": "Tell me a long story."}]
MiB = 1024 * 1024
UPSTREAM_LIMIT = 64 * MiB  # what the hostile upstream sends at most (without caps: all held)
SSE_HEAD = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
PIECE = "word " * 200  # 1000 characters of answer per event
CONTENT_EVENT = (
    "data: "
    + json.dumps({"id": "c", "choices": [{"index": 0, "delta": {"content": PIECE}}]})
    + "\n\n"
).encode()


@pytest.fixture
def upstream():
    server = FaultServer()
    server.start()
    server.closed_at: float | None = None
    yield server
    server.stop()


@pytest.fixture
def chain(db, upstream, secondary):
    provider_create(name="hostile", base_url=f"{upstream.url}/v1", max_attempts=1, timeout_s=30.0)
    provider_create(name="secondary", base_url=secondary.base_url, timeout_s=30.0)


def _endless(upstream, piece: bytes, *, pause_s: float = 0.0):
    """Send `piece` again and again until UPSTREAM_LIMIT or the reader goes away
    (`upstream.closed_at`: when it went, seen at once even while pausing)."""

    def reader_gone(exchange) -> bool:
        readable, _, _ = select.select([exchange.conn], [], [], pause_s)
        return bool(readable) and exchange.conn.recv(1) == b""

    def behaviour(exchange):
        exchange.send_head(200, "OK", SSE_HEAD)
        sent = 0
        try:
            while sent < UPSTREAM_LIMIT and not exchange.stopping.is_set():
                exchange.send(piece)
                sent += len(piece)
                if pause_s and reader_gone(exchange):
                    raise ConnectionResetError
            exchange.send("data: [DONE]\n\n")
        except OSError:
            upstream.closed_at = time.monotonic()
            raise

    upstream.serve(behaviour)


def _measured(work):
    """What `work` returns, and the most bytes Python held while it ran."""
    tracemalloc.start()
    try:
        result = work()
        return tracemalloc.get_traced_memory()[1], result
    finally:
        tracemalloc.stop()


def _stream(client, auth, **extra):
    body = {"model": "fallback", "messages": HELLO, "stream": True, **extra}
    response = client.post(URL, json.dumps(body), content_type="application/json", headers=auth)
    size = 0
    tail = b""
    for part in response.streaming_content:  # read as a client would, keeping nothing
        size += len(part)
        tail = part
    return response, tail


def _failover_detail() -> str:
    event = FailoverEvent.objects.get(kind=FailoverEvent.Kind.FAILOVER)
    assert event.reason == "malformed_response"
    return event.detail


def test_a_data_line_that_never_ends_an_event_is_capped(client, auth, chain, upstream, secondary):
    """Was: one worker grew from 67 to 684 MB in the first-token window. Now the
    event is cut at FALLBACK_STREAM_MAX_EVENT_BYTES, failed over, and counted
    against the hostile provider."""
    _endless(upstream, b"data: " + b"x" * 1018 + b"\n")  # data lines, never a blank line

    peak, (response, _) = _measured(lambda: _stream(client, auth))

    cap = DEFAULTS["STREAM_MAX_EVENT_BYTES"]
    assert peak < 4 * cap, f"{peak} bytes allocated for a {cap}-byte event cap"
    assert response["X-Fallback-Provider"] == "secondary"
    assert f"stream event larger than {cap} bytes" in _failover_detail()
    assert BreakerState.objects.get(provider__name="hostile").consecutive_failures == 1


def test_held_back_text_is_capped(client, auth, chain, upstream, secondary):
    """Was: with hold-back the worker held an endless answer (2.46 GB). Now the
    answer is cut at FALLBACK_STREAM_MAX_TEXT_BYTES, a malformed_response that
    fails over before anything reached the client."""
    _endless(upstream, CONTENT_EVENT)

    peak, (response, _) = _measured(lambda: _stream(client, auth, x_fallback_hold_back=True))

    cap = DEFAULTS["STREAM_MAX_TEXT_BYTES"]
    # The held deltas, the adapter's copy of the text and the format check's copy.
    assert peak < 4 * cap + 8 * MiB, f"{peak} bytes allocated for a {cap}-byte text cap"
    assert response["X-Fallback-Provider"] == "secondary"
    assert f"the answer is larger than {cap} bytes" in _failover_detail()


def test_text_kept_for_rescue_is_capped(client, auth, chain, upstream, secondary):
    """Was: without hold-back all streamed text was kept for a rescue (+132 MB for
    151 MB). Now the stream fails at the cap, after output: it ends or is
    continued, and what was held stays within the cap."""
    _endless(upstream, CONTENT_EVENT)

    peak, (response, tail) = _measured(lambda: _stream(client, auth))

    cap = DEFAULTS["STREAM_MAX_TEXT_BYTES"]
    assert peak < 4 * cap + 8 * MiB, f"{peak} bytes allocated for a {cap}-byte text cap"
    assert response["X-Fallback-Provider"] == "hostile"
    assert b"[DONE]" not in tail or b"secondary" in tail  # interrupted, or continued
    assert BreakerState.objects.get(provider__name="hostile").consecutive_failures == 1


def _hang_up_after_request(live_server, api_key, upstream, **extra) -> float:
    """Send a streamed chat on a raw socket, close it once the upstream is being
    read, and return when the client hung up."""
    body = json.dumps({"model": "fallback", "messages": HELLO, "stream": True, **extra})
    host, port = live_server.thread.host, live_server.thread.port
    conn = socket.create_connection((host, port))
    conn.sendall(
        (
            f"POST {URL} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {api_key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n{body}"
        ).encode()
    )
    deadline = time.monotonic() + 10
    while not upstream.requests and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # the upstream is now being read
    conn.close()
    return time.monotonic()


def _wait_for_close(upstream, seconds: float) -> float | None:
    deadline = time.monotonic() + seconds
    while upstream.closed_at is None and time.monotonic() < deadline:
        time.sleep(0.05)
    return upstream.closed_at


@pytest.mark.parametrize("hold_back", [True, False])
def test_the_upstream_read_stops_soon_after_the_client_hangs_up(
    live_server, api_key, chain, upstream, hold_back
):
    """Was: with hold-back the worker read an endless upstream until the stream's
    maximum (600 s); without, a slow upstream was read until its next chunk
    failed to reach the client. Now the hang-up watcher shuts the upstream down
    (docs/engine.md, "Bounded work per request"): the upstream sees its reader
    go within about a second, long before its next event (5 s) or any stream
    limit, and the provider is not blamed."""
    _endless(upstream, CONTENT_EVENT, pause_s=5.0)  # slow, endless, never silent 10 s

    hung_up = _hang_up_after_request(live_server, api_key, upstream, x_fallback_hold_back=hold_back)
    closed_at = _wait_for_close(upstream, 15)

    assert closed_at is not None, "the upstream was still being read 15 s after the hang-up"
    assert closed_at - hung_up < 3.0, "the upstream was read until its next event"
    time.sleep(0.5)
    assert BreakerState.objects.get(provider__name="hostile").consecutive_failures == 0
