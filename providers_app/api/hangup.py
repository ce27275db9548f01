"""Noticing that a streaming client hung up, within a second (DESIGN §12).

A client that goes away is normally noticed when a write to it fails. A held
back stream writes nothing until the answer is whole, and a slow upstream gives
nothing to write: the worker would read on, for nobody, until the stream's
limits. So while a streamed request is served, one daemon thread per process
looks at its client's socket every ``POLL_S``: readable with nothing to read
means the peer closed. Then the request's ``Cancellation`` is set, which shuts
the upstream socket down: the read stops within ``POLL_S`` (+ a scheduling
moment), held back or not. (A client that only half-closes its socket after
sending the request looks gone too; HTTP clients do not do that.)

The socket comes from the WSGI server: gunicorn's ``environ["gunicorn.socket"]``,
or Django's development and test server's request stream. Under another server
(or TLS terminated in the worker) there is nothing to watch and the write
failure remains the only sign.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import threading
from collections.abc import Mapping
from typing import Any

from ..adapters.cancel import Cancellation

logger = logging.getLogger("providers_app.api")

POLL_S = 0.25


class _Watcher:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._watched: dict[Cancellation, socket.socket] = {}
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()

    def watch(self, sock: socket.socket, cancellation: Cancellation) -> None:
        with self._lock:
            self._watched[cancellation] = sock
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="fallback-hangup-watcher", daemon=True
                )
                self._thread.start()

    def forget(self, cancellation: Cancellation) -> None:
        with self._lock:
            self._watched.pop(cancellation, None)

    def _run(self) -> None:
        while True:
            self._wake.wait(POLL_S)
            with self._lock:
                watched = list(self._watched.items())
            for cancellation, sock in watched:
                if _peer_closed(sock):
                    self.forget(cancellation)
                    logger.info("client hung up: stopping its upstream read")
                    cancellation.cancel()


def _peer_closed(sock: socket.socket) -> bool:
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return False
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except (OSError, ValueError):  # closed, reset, or a TLS socket (no MSG_PEEK)
        return isinstance(sock, socket.socket) and sock.fileno() == -1


_WATCHER = _Watcher()


def client_socket(environ: Mapping[str, Any]) -> socket.socket | None:
    """The client's socket, when the WSGI server lets us see it."""
    sock = environ.get("gunicorn.socket")
    if isinstance(sock, socket.socket):
        return sock
    # Django's runserver/live server: wsgi.input is a LimitedStream over the
    # socket's buffered reader.
    stream = environ.get("wsgi.input")
    reader = getattr(getattr(stream, "_read", None), "__self__", None)
    sock = getattr(getattr(reader, "raw", None), "_sock", None)
    return sock if isinstance(sock, socket.socket) else None


class HangupWatch:
    """One request's watch: ``cancellation`` is set when its client hangs up."""

    def __init__(self, environ: Mapping[str, Any]) -> None:
        self.cancellation = Cancellation()
        sock = client_socket(environ)
        if sock is not None:
            _WATCHER.watch(sock, self.cancellation)

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            _WATCHER.forget(self.cancellation)
