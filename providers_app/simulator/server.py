"""A local OpenAI-compatible upstream with switchable faults, for tests and demos.

Usage::

    with UpstreamSimulator("primary") as sim:
        sim.set_fault("sequence", steps=[{"mode": "error"}, {"mode": "error"}, {"mode": "ok"}])
        requests.post(f"{sim.base_url}/chat/completions", json={...})
        assert sim.request_count == 1

Stdlib only (no Django), so tests, the benchmark and management commands can
all use it. The fault modes and their options are listed in ``faults.py``; the
behaviour of each mode is in ``handler.py``.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import sys
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from http.server import HTTPServer
from socketserver import ThreadingMixIn
from types import TracebackType
from typing import Any

from .faults import Fault, FaultConfigError, parse_fault
from .handler import CONTINUATION_DIALECTS, SimulatorContext, SimulatorHandler
from .schedule import FaultSchedule, ScheduleRunner

__all__ = [
    "DEMO_FIRST_PORT",
    "DEMO_SPECS",
    "SimulatorSpec",
    "UpstreamSimulator",
    "demo_specs",
    "run_simulators",
]

logger = logging.getLogger(__name__)

# How often serve_forever() checks for shutdown; bounds how long stop() waits.
_POLL_INTERVAL_S = 0.02


class _SimulatorHTTPServer(ThreadingMixIn, HTTPServer):
    """Thread per connection; tracks live connections so stop() can cut them."""

    daemon_threads = True
    allow_reuse_address = True
    # Several processes hammer one simulator in the breaker tests; the default
    # backlog of 5 would refuse connections under that burst.
    request_queue_size = 128
    # server_close() must not join handler threads: some may be hung on purpose.
    block_on_close = False

    def __init__(self, address: tuple[str, int], context: SimulatorContext) -> None:
        self.context = context
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, SimulatorHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Wake handler threads idling on keep-alive connections, so they exit.

        Otherwise a client's pooled connection would still be answered by a
        stopped simulator, which would hide "upstream is down" in tests.
        """
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # already closed by its handler
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that disconnect (timeouts, aborted streams) are routine here.
        error = sys.exc_info()[1]
        if isinstance(error, OSError | ValueError):
            logger.debug("simulator %s: connection error %r", self.context.name, error)
            return
        logger.error("simulator %s: handler crashed", self.context.name, exc_info=error)


class UpstreamSimulator:
    """One simulated OpenAI-compatible upstream on ``http://host:port/v1``."""

    def __init__(
        self,
        name: str = "sim",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        model: str | None = None,
        continuation: str = "trailing_assistant",
    ) -> None:
        self.name = name
        self.host = host
        self.model = model
        self._requested_port = port
        self._context = SimulatorContext(name=name, model=model)
        self.set_continuation(continuation)
        self._server: _SimulatorHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> UpstreamSimulator:
        """Bind and serve on a daemon thread. After stop(), binds the same port again."""
        if self._server is not None:
            return self
        self._context.stopping.clear()
        server = _SimulatorHTTPServer((self.host, self._requested_port), self._context)
        # Remember the port, so a restart after stop() comes back where
        # clients (and provider rows) expect it.
        self._requested_port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": _POLL_INTERVAL_S},
            name=f"upstream-simulator-{self.name}",
            daemon=True,
        )
        self._thread.start()
        logger.info("simulator %s listening on %s", self.name, self.base_url)
        return self

    def stop(self) -> None:
        """Stop serving; returns promptly even while requests hang or stream."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._server = self._thread = None
        # Release waiters first: hung handlers and delays return at once.
        self._context.stopping.set()
        self.stop_schedule()
        self._context.state.release_waiters()
        server.shutdown()
        server.server_close()
        server.close_connections()
        if thread is not None:
            thread.join(timeout=1)

    def __enter__(self) -> UpstreamSimulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<UpstreamSimulator {self.name} {self.base_url} mode={self.fault.mode}>"

    # -- addresses -------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port (the requested one until start() picks one for port 0)."""
        return self._requested_port

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    @property
    def running(self) -> bool:
        return self._server is not None

    # -- faults and counters ---------------------------------------------------

    def set_fault(self, mode: str, **options: Any) -> None:
        """Apply ``mode`` to subsequent requests; raises FaultConfigError (a ValueError)."""
        fault = parse_fault(mode, options)
        self._context.state.set_fault(fault)
        logger.info("simulator %s: fault set to %s", self.name, mode)

    def follow_schedule(self, schedule: FaultSchedule) -> ScheduleRunner:
        """Switch faults by ``schedule`` from now on (shown on ``/_sim``) until stop()."""
        self.stop_schedule()
        runner = ScheduleRunner(schedule, self._context.state)
        self._context.schedule = runner
        return runner.start(self.name)

    def stop_schedule(self) -> None:
        """Stop following a schedule; the fault in force stays."""
        runner, self._context.schedule = self._context.schedule, None
        if runner is not None:
            runner.stop()

    @property
    def schedule(self) -> ScheduleRunner | None:
        return self._context.schedule

    def set_continuation(self, dialect: str) -> None:
        """Speak ``dialect`` when asked to continue a partial answer: one of
        ``CONTINUATION_DIALECTS`` (a server property, kept by ``reset``)."""
        if dialect not in CONTINUATION_DIALECTS:
            raise FaultConfigError(
                f"unknown continuation dialect {dialect!r}; one of {CONTINUATION_DIALECTS}",
                param="continuation",
            )
        self._context.continuation = dialect

    @property
    def continuation(self) -> str:
        return self._context.continuation

    def reset(self) -> None:
        """Back to mode "ok" with every counter at zero; releases hung requests."""
        self._context.state.reset()

    @property
    def fault(self) -> Fault:
        return self._context.state.fault

    @property
    def request_count(self) -> int:
        """Chat completion requests received (health and control requests excluded)."""
        return self._context.state.request_count

    @property
    def request_times(self) -> list[float]:
        """``time.time()`` at the arrival of each chat completion request."""
        return self._context.state.request_times

    @property
    def health_count(self) -> int:
        """``GET /v1/models`` (and ``/v1/models/{id}``) requests received."""
        return self._context.state.health_count

    @property
    def last_request(self) -> dict[str, Any] | None:
        """The last chat request: ``{"path", "headers", "json"}``, or None."""
        return self._context.state.last_request

    def state(self) -> dict[str, Any]:
        """The same document as ``GET /_sim/state``."""
        state = {"name": self.name, "model": self.model, **self._context.state.snapshot()}
        if self._context.schedule is not None:
            state["schedule"] = self._context.schedule.status()
        return state


@dataclass(frozen=True)
class SimulatorSpec:
    """How to start one simulator in ``run_simulators``."""

    name: str
    port: int = 0
    host: str = "127.0.0.1"
    model: str | None = None
    schedule: FaultSchedule | None = None  # followed from start (the demo's primary)


DEMO_NAMES = ("primary", "secondary", "tertiary")
DEMO_FIRST_PORT = 18101


def demo_specs(
    first_port: int = DEMO_FIRST_PORT, *, primary_schedule: FaultSchedule | None = None
) -> tuple[SimulatorSpec, ...]:
    """The demo's three upstreams on consecutive ports; the primary may follow a schedule."""
    return tuple(
        SimulatorSpec(name, first_port + offset, schedule=primary_schedule if offset == 0 else None)
        for offset, name in enumerate(DEMO_NAMES)
    )


# Three upstreams for the demo command, on fixed ports so provider rows can
# point at them across restarts.
DEMO_SPECS: tuple[SimulatorSpec, ...] = demo_specs()


def run_simulators(
    specs: Iterable[SimulatorSpec | Mapping[str, Any]] = DEMO_SPECS,
) -> list[UpstreamSimulator]:
    """Start one simulator per spec (a SimulatorSpec or a dict of its fields).

    All or nothing: if one cannot bind, those already started are stopped.
    """
    started: list[UpstreamSimulator] = []
    try:
        for raw in specs:
            spec = raw if isinstance(raw, SimulatorSpec) else SimulatorSpec(**raw)
            simulator = UpstreamSimulator(
                spec.name, host=spec.host, port=spec.port, model=spec.model
            )
            started.append(simulator.start())
            if spec.schedule is not None:
                simulator.follow_schedule(spec.schedule)
    except BaseException:
        for simulator in started:
            simulator.stop()
        raise
    return started
