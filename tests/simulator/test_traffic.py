"""The demo's traffic generator: a real HTTP client with the key, a mix, no pile-up."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from providers_app.simulator.traffic import TOOL_CALL_EXAMPLE, TrafficGenerator, request_mix


class _Api(BaseHTTPRequestHandler):
    """Stands in for the layer's API: records each request, answers like it does."""

    seen: list = []
    status = 200
    delay_s = 0.0

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append((self.path, self.headers["Authorization"], body))
        time.sleep(type(self).delay_s)
        self.send_response(type(self).status)
        self.send_header("X-Fallback-Provider", "secondary")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


@pytest.fixture
def api():
    _Api.seen, _Api.status, _Api.delay_s = [], 200, 0.0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _wait_for(condition, timeout_s=5.0):
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return condition()


def test_it_sends_chats_with_the_key_and_counts_who_answered(api):
    reports = []
    traffic = TrafficGenerator(
        api, "fbk_test", rate_per_s=50, report=reports.append, report_every_s=0.1
    ).start()
    try:
        assert _wait_for(lambda: traffic.outcomes().get("secondary", 0) >= 10)
        assert _wait_for(lambda: reports)
    finally:
        traffic.stop()
    path, authorization, body = _Api.seen[0]
    assert path == "/v1/chat/completions"
    assert authorization == "Bearer fbk_test"
    assert body["messages"][0]["role"] == "user"
    assert reports[0].startswith("traffic: ")


def test_errors_are_counted_by_status(api):
    _Api.status = 503
    traffic = TrafficGenerator(api, "fbk_test")
    assert traffic.send({"messages": []}) == "HTTP 503"


def test_no_answer_is_counted_not_raised():
    traffic = TrafficGenerator("http://127.0.0.1:9", "fbk_test", timeout_s=1)
    assert traffic.send({"messages": []}) == "no answer"


def test_busy_workers_skip_ticks_instead_of_piling_up(api):
    _Api.delay_s = 1.0
    traffic = TrafficGenerator(api, "fbk_test", rate_per_s=100, workers=2).start()
    try:
        assert _wait_for(lambda: traffic.outcomes().get("skipped", 0) >= 5)
        assert len(_Api.seen) <= 2
    finally:
        traffic.stop()


def test_it_waits_until_the_server_is_up(api):
    ready = threading.Event()
    traffic = TrafficGenerator(api, "k", rate_per_s=50, wait_for=ready.is_set).start()
    try:
        time.sleep(0.3)
        assert _Api.seen == []
        ready.set()
        assert _wait_for(lambda: _Api.seen)
    finally:
        traffic.stop()


def test_the_mix_has_plain_streamed_and_tool_calling_chats():
    mix = request_mix()
    bodies = [next(mix) for _ in range(15)]
    assert sum(1 for b in bodies if b.get("stream")) == 4  # 3, 6, 9, 12 (15 is a tool call)
    assert sum(1 for b in bodies if b is TOOL_CALL_EXAMPLE) == 3
    assert TOOL_CALL_EXAMPLE["tools"][0]["function"]["name"] == "get_weather"


def test_a_rate_of_zero_is_refused():
    with pytest.raises(ValueError, match="rate_per_s"):
        TrafficGenerator("http://127.0.0.1:9", "k", rate_per_s=0)
