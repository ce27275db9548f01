"""A tiny threaded HTTP server on 127.0.0.1 that misbehaves on request.

Each test hands ``FaultServer.serve`` a function that receives an ``Exchange``
(one accepted connection with the request already read) and writes whatever
bytes, pauses, resets or silences the scenario needs. Raw sockets rather than
``http.server`` so that a test controls every byte and every close.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

# SO_LINGER on with a zero timeout: close() sends RST instead of FIN.
_LINGER_RST = struct.pack("ii", 1, 0)


@dataclass
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Exchange:
    """One connection: the request as read, and ways to answer or misbehave."""

    conn: socket.socket
    stopping: threading.Event
    request: ReceivedRequest | None = None
    _buffer: bytes = field(default=b"", repr=False)

    def read_request(self) -> ReceivedRequest:
        while b"\r\n\r\n" not in self._buffer:
            self._buffer += self._recv()
        head, _, rest = self._buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(rest) < length:
            rest += self._recv()
        self.request = ReceivedRequest(method, path, headers, rest[:length])
        self._buffer = rest[length:]  # the next request on a kept-alive connection
        return self.request

    def send(self, data: bytes | str) -> None:
        self.conn.sendall(data.encode() if isinstance(data, str) else data)

    def send_head(
        self,
        status: int = 200,
        reason: str = "OK",
        headers: dict[str, str] | None = None,
    ) -> None:
        lines = [f"HTTP/1.1 {status} {reason}", "Connection: close"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        self.send("\r\n".join(lines) + "\r\n\r\n")

    def send_response(
        self, status: int, body: bytes | str, *, content_type: str, reason: str = "OK"
    ) -> None:
        data = body.encode() if isinstance(body, str) else body
        self.send_head(
            status,
            reason,
            {"Content-Type": content_type, "Content-Length": str(len(data))},
        )
        self.send(data)

    def pause(self, seconds: float) -> bool:
        """Sleep unless the server is stopping; False means stop misbehaving now."""
        return not self.stopping.wait(seconds)

    def hang(self) -> None:
        """Say nothing more until the test is over."""
        self.stopping.wait()

    def reset(self) -> None:
        """Abort the connection with a TCP RST."""
        with contextlib.suppress(OSError):
            self.conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
            self.conn.close()

    def _recv(self) -> bytes:
        data = self.conn.recv(65536)
        if not data:
            raise ConnectionError("client closed before sending a whole request")
        return data


Behaviour = Callable[[Exchange], None]


class FaultServer:
    """Accepts connections on an ephemeral port and runs ``behaviour`` for each."""

    def __init__(self) -> None:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self._listener.settimeout(0.05)
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._connections: list[socket.socket] = []
        self.behaviour: Behaviour = lambda exchange: exchange.hang()
        self.requests: list[ReceivedRequest] = []

    @property
    def connections_accepted(self) -> int:
        return len(self._connections)

    @property
    def url(self) -> str:
        host, port = self._listener.getsockname()
        return f"http://{host}:{port}"

    def serve(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour

    def start(self) -> None:
        thread = threading.Thread(target=self._accept_loop, name="fault-server", daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        self._stopping.set()
        for conn in self._connections:
            with contextlib.suppress(OSError):
                conn.close()
        for thread in self._threads:
            thread.join(timeout=2)
        self._listener.close()

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._connections.append(conn)
            handler = threading.Thread(target=self._handle, args=(conn,), daemon=True)
            handler.start()
            self._threads.append(handler)

    def _handle(self, conn: socket.socket) -> None:
        exchange = Exchange(conn, self._stopping)
        try:
            self.requests.append(exchange.read_request())
            self.behaviour(exchange)
        except OSError:
            pass  # the client gave up first: exactly what several tests provoke
        finally:
            with contextlib.suppress(OSError):
                conn.close()


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
