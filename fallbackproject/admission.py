"""Graceful overload, answered before Django: chats beyond the server's capacity
wait a bounded time for a slot and then get a 503 with Retry-After (an
OpenAI-shaped JSON error), never a connection timeout or reset; `GET /readyz`
says whether the server is saturated, so a load balancer can steer away.

Only chats take slots: POST requests under /v1/ (the OpenAI-compatible API).
The admin, the dashboard, /healthz, /readyz and /metrics never wait for one, so
an operator can still steer a saturated server. The slot is given back when
the response is closed, i.e. after the last byte of a stream.

The policy (capacity, queue, longest wait) lives in fallbackproject/capacity.py
and its numbers in fallbackproject/serving.py; docs/operations.md ("Overload
and readiness") describes them for operators.
"""

import json
import math
from collections.abc import Callable, Iterable, Iterator

from fallbackproject.capacity import Slots, server_load

READINESS_PATH = "/readyz"
CHAT_PREFIX = "/v1/"


def _json(body: dict) -> bytes:
    return json.dumps(body).encode()


def overloaded_response(slots: Slots) -> tuple[str, list[tuple[str, str]], bytes]:
    """The 503 of a chat that got no slot (status, headers, body)."""
    retry_after = max(1, math.ceil(slots.queue_s))
    body = _json(
        {
            "error": {
                "message": (
                    f"The server is at capacity ({slots.capacity} chats per worker); "
                    f"retry after {retry_after} s."
                ),
                "type": "service_unavailable",
                "param": None,
                "code": "server_at_capacity",
            }
        }
    )
    headers = [
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(body))),
        ("Retry-After", str(retry_after)),
        ("Cache-Control", "no-store"),
        ("Connection", "close"),
    ]
    return "503 Service Unavailable", headers, body


def readiness_response(slots: Slots) -> tuple[str, list[tuple[str, str]], bytes]:
    """200 while a chat would get a slot at once, 503 while saturated (status, headers, body)."""
    load = server_load(slots)
    body = _json(load.as_json())
    status = "503 Service Unavailable" if load.saturated else "200 OK"
    headers = [
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(body))),
        ("Cache-Control", "no-store"),
    ]
    return status, headers, body


class _GivesSlotBack:
    """The app's response, which gives the chat's slot back when it is closed."""

    def __init__(self, result: Iterable[bytes], leave: Callable[[], None]) -> None:
        self._result = result
        self._leave = leave

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._result)

    def close(self) -> None:
        try:
            close = getattr(self._result, "close", None)
            if close is not None:
                close()
        finally:
            leave, self._leave = self._leave, None
            if leave is not None:
                leave()


def with_admission(app: Callable, slots: Slots) -> Callable:
    """`app` with chats admitted by `slots` and GET /readyz answered in place."""

    def application(environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD")
        if path == READINESS_PATH and method in ("GET", "HEAD"):
            status, headers, body = readiness_response(slots)
            start_response(status, headers)
            return [b"" if method == "HEAD" else body]
        if method != "POST" or not path.startswith(CHAT_PREFIX):
            return app(environ, start_response)
        if not slots.enter():
            status, headers, body = overloaded_response(slots)
            start_response(status, headers)
            return [body]
        try:
            result = app(environ, start_response)
        except BaseException:
            slots.leave()
            raise
        return _GivesSlotBack(result, slots.leave)

    return application
