"""A small traffic generator for the demo: a few chats a second through the HTTP API.

It is a client like any chatbot: ``POST /v1/chat/completions`` with a client
key, so every request takes the production path (authentication, routing,
breaker, failover, events). The mix has plain answers, streams and a
tool-calling turn, so the dashboard shows each kind. Stdlib only, like the rest
of this package.

Requests never pile up: when every worker is busy (a slow phase of the
schedule), the next tick is skipped and counted as ``skipped``.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["TOOL_CALL_EXAMPLE", "TrafficGenerator", "request_mix"]

# The tool-calling example the demo sends (and the docs show): the upstream
# answers with a call to get_weather; a chatbot would run it and send the result.
TOOL_CALL_EXAMPLE: dict[str, Any] = {
    "model": "fallback",
    "messages": [{"role": "user", "content": "What is the weather in Paris?"}],
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather for a city.",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            },
        }
    ],
}


def request_mix() -> Iterator[dict[str, Any]]:
    """Endless bodies: mostly plain chats, every third a stream, every fifth a tool call."""
    for number in itertools.count(1):
        if number % 5 == 0:
            yield TOOL_CALL_EXAMPLE
        else:
            body: dict[str, Any] = {
                "model": "fallback",
                "messages": [{"role": "user", "content": f"Demo question {number}: say hello."}],
            }
            if number % 3 == 0:
                body["stream"] = True
            yield body


class TrafficGenerator:
    """Sends ``rate_per_s`` chats a second to ``base_url`` until stopped."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        rate_per_s: float = 3.0,
        workers: int = 8,
        timeout_s: float = 60.0,
        wait_for: Callable[[], bool] | None = None,
        report: Callable[[str], None] | None = None,
        report_every_s: float = 30.0,
    ) -> None:
        if not rate_per_s > 0:
            raise ValueError("rate_per_s must be above 0")
        self.url = base_url.rstrip("/") + "/v1/chat/completions"
        self._api_key = api_key
        self.rate_per_s = rate_per_s
        self._timeout_s = timeout_s
        self._wait_for = wait_for
        self._report = report
        self._report_every_s = report_every_s
        # At most `workers` requests in flight, each on a daemon thread: a
        # request still waiting when the demo stops must not delay its exit.
        self._free = threading.Semaphore(workers)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._outcomes: Counter[str] = Counter()
        self._bodies = request_mix()

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> TrafficGenerator:
        self._thread = threading.Thread(target=self._run, name="demo-traffic", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def _run(self) -> None:
        while self._wait_for is not None and not self._wait_for():
            if self._stop.wait(0.5):
                return
        interval = 1.0 / self.rate_per_s
        next_at = time.monotonic()
        report_at = next_at + self._report_every_s
        while not self._stop.is_set():
            if self._report is not None and time.monotonic() >= report_at:
                self._report(self.summary())
                report_at += self._report_every_s
            if self._free.acquire(blocking=False):
                threading.Thread(
                    target=self._send_one, args=(next(self._bodies),), daemon=True
                ).start()
            else:
                self._count("skipped")
            next_at += interval
            self._stop.wait(max(next_at - time.monotonic(), 0))

    # -- one request -----------------------------------------------------------

    def _send_one(self, body: dict[str, Any]) -> None:
        try:
            self._count(self.send(body))
        finally:
            self._free.release()

    def send(self, body: dict[str, Any]) -> str:
        """Send one chat; return its outcome: the answering provider or ``HTTP <status>``."""
        request = urllib.request.Request(  # noqa: S310  (http URL given by run_demo)
            self.url,
            data=json.dumps(body).encode(),
            headers={
                "Authorization": f"Bearer {self._api_key}",
                "Content-Type": "application/json",
            },
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout_s) as response:  # noqa: S310
                response.read()
                return response.headers.get("X-Fallback-Provider") or "answered"
        except urllib.error.HTTPError as error:
            error.read()
            return f"HTTP {error.code}"
        except (OSError, ValueError):
            return "no answer"

    # -- reading ---------------------------------------------------------------

    def _count(self, outcome: str) -> None:
        with self._lock:
            self._outcomes[outcome] += 1

    def outcomes(self) -> dict[str, int]:
        with self._lock:
            return dict(self._outcomes)

    def summary(self) -> str:
        """``"traffic: 41 sent: primary 30, secondary 11"`` for the demo's console."""
        outcomes = self.outcomes()
        sent = sum(n for k, n in outcomes.items() if k != "skipped")
        parts = ", ".join(f"{k} {n}" for k, n in sorted(outcomes.items()))
        return f"traffic: {sent} sent: {parts or 'nothing yet'}"
