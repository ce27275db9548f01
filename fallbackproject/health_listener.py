"""Liveness and readiness on a port of their own, answered by gunicorn's master.

At 1,024 streaming clients a `/healthz` sent to the main port waited 10 s in the
listen backlog behind chats (every worker thread busy), and an orchestrator's
liveness probe would have restarted a busy but healthy server. The master
process serves no chats: its own thread answers these probes on
HEALTH_BIND (default: the main bind's host, port + 1), so chats can never
saturate it.

- `GET /healthz`: 200 while at least one worker has shown gunicorn's heartbeat
  within the worker timeout (gunicorn itself replaces a worker that misses it),
  else 503.
- `GET /readyz`: the board's sum over workers (fallbackproject/capacity.py):
  200 `ready` while a chat would get a slot at once, 503 `saturated` otherwise.

Nothing here logs or takes a lock a forked worker could inherit held: the
master forks while this thread runs, and the child closes the socket at once
(gunicorn.conf.py post_fork).
"""

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from fallbackproject.capacity import Board, Load


def health_bind(main_bind: str, configured: str | None) -> tuple[str, int] | None:
    """(host, port) to listen on: HEALTH_BIND if set ("" or "off": none), else main port + 1."""
    if configured is not None:
        if configured.strip().lower() in ("", "off"):
            return None
        host, _, port = configured.rpartition(":")
        return host or "127.0.0.1", int(port)
    host, _, port = main_bind.rpartition(":")
    if not host or host.startswith("unix"):
        return None
    return host, int(port) + 1


def _live_workers(arbiter, now: float) -> int:
    """Workers whose heartbeat file moved within the worker timeout."""
    alive = 0
    for worker in list(arbiter.WORKERS.values()):
        try:
            if now - worker.tmp.last_update() <= arbiter.timeout:
                alive += 1
        except (OSError, ValueError):  # the worker is being reaped
            continue
    return alive


class HealthListener:
    """A small threaded HTTP server in gunicorn's master (see the module's docstring)."""

    def __init__(self, address: tuple[str, int], live_workers: Callable[[], int], board: Board):
        self._live_workers = live_workers
        self._board = board
        listener = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_GET(self) -> None:  # http.server names it so
                self._answer(head=False)

            def do_HEAD(self) -> None:
                self._answer(head=True)

            def _answer(self, head: bool) -> None:
                status, body = listener.answer(self.path.split("?", 1)[0])
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                if not head:
                    self.wfile.write(data)

            def log_message(self, format, *args) -> None:
                pass  # probes every few seconds would drown the access log

        self.server = ThreadingHTTPServer(address, Handler)
        self.server.daemon_threads = True
        self.address = self.server.server_address[:2]
        self._thread = threading.Thread(
            target=self.server.serve_forever, name="fallback-health-listener", daemon=True
        )

    def answer(self, path: str) -> tuple[int, dict]:
        if path == "/healthz":
            workers = self._live_workers()
            status = "ok" if workers else "no worker alive"
            return (200 if workers else 503), {"status": status, "workers": workers}
        if path == "/readyz":
            load: Load = self._board.total()
            if load.workers == 0:
                return 503, {**load.as_json(), "status": "starting"}
            return (503 if load.saturated else 200), load.as_json()
        return 404, {"error": "not found; try /healthz or /readyz"}

    def start(self) -> "HealthListener":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def for_arbiter(arbiter, address: tuple[str, int], board: Board) -> HealthListener:
    return HealthListener(address, lambda: _live_workers(arbiter, time.monotonic()), board)
