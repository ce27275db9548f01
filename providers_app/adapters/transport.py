"""HTTP plumbing shared by every adapter: session, auth header, send, read with limits.

- One pooled ``requests.Session`` per adapter, with an ``HTTPAdapter`` mounted
  with ``max_retries=0``: the fallback service is the only retry loop.
- Explicit ``(connect, read)`` timeouts on every call, redirects never followed
  (they would carry ``api-key``/``x-api-key`` headers to another host).
- Bodies are read with ``read1`` (at most one socket read each) and the socket
  timeout is re-armed before every read from a ``Deadline``, so a server that
  trickles bytes or sends keep-alives is still cut off on the wall clock.
  Limitation: while ``requests`` waits for the status line and headers, only the
  per-read timeout applies (armed with the time left when the call started).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase
from requests.structures import CaseInsensitiveDict

from .classify import classify_exception, timeout_error
from .errors import ProviderError
from .timing import Deadline

logger = logging.getLogger(__name__)

USER_AGENT = "django-llm-fallback/0.1"
READ_CHUNK_BYTES = 64 * 1024
MAX_BODY_BYTES = 16 * 1024 * 1024
MAX_ERROR_BODY_BYTES = 64 * 1024

# What reading a streamed body can raise, before classification.
TRANSPORT_EXCEPTIONS = (requests.RequestException, urllib3.exceptions.HTTPError, OSError)


# Idle keep-alive connections kept per upstream host. At least the chat slots of
# one web process (fallbackproject/serving.py, 576 by default): with fewer,
# every thread above it opens a fresh connection per call and throws it away
# ("pool is full"). Only connections actually needed are ever opened.
KEEP_ALIVE_PER_HOST = 1024
# After a stream's last event, how long the end of its body (the chunked
# terminator, normally in the same packet) may take before the connection is
# dropped instead of kept for the next call; and how much may still come.
END_OF_BODY_WAIT_S = 0.05
END_OF_BODY_MAX_BYTES = 4 * 1024


def build_session(base_url: str | None = None) -> requests.Session:
    """A pooled session that never retries on its own.

    The environment's proxy and CA-bundle settings are read once here, not on
    every call: `requests` otherwise rescans every environment variable per
    request, which cost more than the rest of the failover layer together.
    """
    session = requests.Session()
    no_retries = HTTPAdapter(max_retries=0, pool_maxsize=KEEP_ALIVE_PER_HOST)
    session.mount("https://", no_retries)
    session.mount("http://", no_retries)
    session.headers["User-Agent"] = USER_AGENT
    session.trust_env = False
    if base_url:
        session.proxies = requests.utils.get_environ_proxies(base_url)
    ca_bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    session.verify = ca_bundle or True
    return session


class HeaderAuth(AuthBase):
    """Puts the key in one header at send time; never shows it in a repr.

    Passing an ``auth`` object also stops ``requests`` from applying ``~/.netrc``
    credentials over the provider's header.
    """

    def __init__(self, header: str, value: str) -> None:
        self.header = header
        self._value = value

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers[self.header] = self._value
        return request

    def __repr__(self) -> str:
        return f"HeaderAuth(header={self.header!r}, value=<hidden>)"


@dataclass(frozen=True)
class HttpCall:
    """One request an adapter wants made; built by the vendor module."""

    method: str
    url: str
    json: Any = None
    params: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ResponseMeta:
    """What the adapters keep of a response: never the ``requests`` objects themselves."""

    status: int
    headers: CaseInsensitiveDict[str]
    request_id: str | None


class Transport:
    """Sends ``HttpCall``s for one provider and turns every failure into a ``ProviderError``."""

    def __init__(
        self,
        session: requests.Session,
        *,
        provider: str,
        auth: AuthBase | None,
        connect_timeout_s: float,
        secrets: Iterable[str | None],
    ) -> None:
        self.session = session
        self.provider = provider
        self.auth = auth
        self.connect_timeout_s = connect_timeout_s
        self.secrets = tuple(secrets)

    def send(self, call: HttpCall, deadline: Deadline) -> requests.Response:
        """Send ``call`` and return once the status line and headers arrived."""
        self.raise_if_expired(deadline)
        read_timeout = deadline.read_timeout()
        connect_timeout = min(self.connect_timeout_s, read_timeout)
        try:
            response = self.session.send(
                self._prepare(call),
                timeout=(connect_timeout, read_timeout),
                allow_redirects=False,
                stream=True,
                proxies=self.session.proxies,
                verify=self.session.verify,
            )
        except TRANSPORT_EXCEPTIONS as exc:
            raise self.classify(exc, deadline) from detached(exc)
        logger.debug(
            "provider=%s %s %s -> HTTP %s",
            self.provider,
            call.method,
            _path(call.url),
            response.status_code,
        )
        return response

    def _prepare(self, call: HttpCall) -> requests.PreparedRequest:
        """What `Session.request` would send, prepared directly: the session's
        headers under the call's, its cookies, the key put on by `auth`.

        `Session.request` merges every session setting anew on each call
        (hooks, params, cookie jars copied twice, headers checked against
        typing protocols); for a session whose settings never change that was
        a tenth of a streamed chat's CPU (bench/chat_cpu.py)."""
        headers = CaseInsensitiveDict(self.session.headers)
        headers.update(call.headers)
        prepared = requests.PreparedRequest()
        prepared.prepare(
            method=call.method,
            url=call.url,
            headers={name: value for name, value in headers.items() if value is not None},
            params=dict(call.params) or None,
            json=call.json,
            auth=self.auth,
            cookies=self.session.cookies,
            hooks=self.session.hooks,
        )
        return prepared

    def iter_chunks(self, response: requests.Response, deadline: Deadline) -> Iterator[bytes]:
        """Yield the body as it arrives, enforcing ``deadline`` between and during reads."""
        while True:
            self.raise_if_expired(deadline)
            _arm_socket_timeout(response, deadline.read_timeout())
            # requests leaves decoding to the reader: gunzip/inflate here.
            data = response.raw.read1(READ_CHUNK_BYTES, decode_content=True)
            if not data:
                return
            yield data

    def finish_body(self, response: requests.Response, deadline: Deadline) -> bool:
        """After a stream's last event: read the end of the body, so that the
        connection can serve the next call (a stream that drops it pays a new
        TCP and TLS handshake per chat). True when the body ended within
        END_OF_BODY_WAIT_S and END_OF_BODY_MAX_BYTES; else the caller drops it."""
        # Real time, like the socket timeouts it bounds.
        give_up_at = time.monotonic() + END_OF_BODY_WAIT_S
        leftover = 0
        try:
            while leftover <= END_OF_BODY_MAX_BYTES:
                wait = min(give_up_at - time.monotonic(), deadline.read_timeout())
                if wait <= 0:
                    return False
                _arm_socket_timeout(response, wait)
                data = response.raw.read1(READ_CHUNK_BYTES, decode_content=True)
                if not data:
                    return True
                leftover += len(data)
        except TRANSPORT_EXCEPTIONS:
            pass  # a timeout or a reset: the connection is not worth keeping
        return False

    def read_body(
        self, response: requests.Response, deadline: Deadline, *, limit: int = MAX_BODY_BYTES
    ) -> tuple[bytes, bool]:
        """The body read within ``deadline``, and whether it ended before ``limit`` bytes."""
        body = bytearray()
        try:
            for chunk in self.iter_chunks(response, deadline):
                body += chunk
                if len(body) > limit:
                    return bytes(body[:limit]), False
        except TRANSPORT_EXCEPTIONS as exc:
            raise self.classify(exc, deadline) from detached(exc)
        return bytes(body), True

    def raise_if_expired(self, deadline: Deadline) -> None:
        reason = deadline.expired_reason()
        if reason is not None:
            raise timeout_error(self.provider, reason)

    def classify(self, exc: BaseException, deadline: Deadline) -> ProviderError:
        return classify_exception(
            exc,
            provider=self.provider,
            secrets=self.secrets,
            timeout_reason=deadline.binding_limit(),
        )


def meta_of(response: requests.Response, request_id: str | None) -> ResponseMeta:
    return ResponseMeta(
        status=response.status_code,
        headers=CaseInsensitiveDict(response.headers),
        request_id=request_id,
    )


def release(response: requests.Response, *, fully_read: bool) -> None:
    """Return a fully read connection to the pool; drop one that was abandoned mid-body."""
    if fully_read:
        response.raw.release_conn()
    else:
        response.close()


def abort(response: requests.Response) -> None:
    """Stop a read blocked on ``response`` from another thread: shutting the socket
    down wakes the reader (closing it would not)."""
    sock = _socket_of(response)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _arm_socket_timeout(response: requests.Response, seconds: float) -> None:
    """Re-arm the socket's timeout so one blocking read cannot outlive the limit."""
    sock = _socket_of(response)
    if sock is not None:
        with contextlib.suppress(OSError):  # already closed: the next read reports it
            sock.settimeout(seconds)


def _socket_of(response: requests.Response) -> socket.socket | None:
    connection = getattr(response.raw, "connection", None)
    sock = getattr(connection, "sock", None)
    if isinstance(sock, socket.socket):
        return sock
    # http.client's file object -> SocketIO -> socket, when urllib3 let go of the connection.
    raw_io = getattr(getattr(getattr(response.raw, "_fp", None), "fp", None), "raw", None)
    sock = getattr(raw_io, "_sock", None)
    return sock if isinstance(sock, socket.socket) else None


def detached(exc: BaseException) -> BaseException:
    """Chain the cause without the prepared request it carries (its headers hold the key)."""
    for attribute in ("request", "response"):
        if getattr(exc, attribute, None) is not None:
            with contextlib.suppress(AttributeError):
                setattr(exc, attribute, None)
    return exc


def _path(url: str) -> str:
    """The URL path only, for logs: no query string (Azure api-version, anything else)."""
    return url.split("?", 1)[0]
