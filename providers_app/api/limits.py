"""Per-key fairness on the chat API: a 429 over a limit, and the slot held for the
whole response (a stream: until it ends or its client hangs up).

The view calls `hold_key_limits(request, key)` once the key is known; the
`key_limits_held` decorator (inside `json_errors`) gives the slot back when the
view fails or returns a plain answer, or hands it to a streaming response's
body, which renews it while events flow and releases it when the response is
closed (Django closes it at the end, or when the client goes away).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse

from ..limits import Lease, LimitExceeded, acquire, key_limits
from .errors import ApiError

_ATTRIBUTE = "_fallback_limits_lease"


def hold_key_limits(request: HttpRequest, key: Any) -> None:
    """Take the key's limits for this request, or raise the 429 ApiError naming the full one."""
    try:
        lease = acquire(key_limits(key))
    except LimitExceeded as exceeded:
        raise limit_exceeded(exceeded) from None
    setattr(request, _ATTRIBUTE, lease)


def limit_exceeded(exceeded: LimitExceeded) -> ApiError:
    limit = exceeded.limit
    return ApiError(
        429,
        f"This API key is over its limit of {limit.describe()}; "
        f"retry after {exceeded.retry_after_s} s.",
        error_type="rate_limit_exceeded",
        code=f"{limit.kind}_limit_exceeded",
        headers={"Retry-After": str(exceeded.retry_after_s)},
        extra={"limit": str(limit.kind), "maximum": limit.maximum},
    )


def key_limits_held(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            response = view(request, *args, **kwargs)
        except BaseException:
            _release(request)
            raise
        lease = getattr(request, _ATTRIBUTE, None)
        if lease is not None:
            if isinstance(response, StreamingHttpResponse) and not response.is_async:
                response.streaming_content = _HeldBody(response.streaming_content, lease)
            else:
                lease.release()
        return response

    return wrapper


def _release(request: HttpRequest) -> None:
    lease = getattr(request, _ATTRIBUTE, None)
    if lease is not None:
        lease.release()


class _HeldBody:
    """A streaming body that keeps the key's slot while it flows; `close` releases it.
    (The original body keeps its own `close`: Django calls both.)"""

    def __init__(self, events: Iterator[bytes], lease: Lease) -> None:
        self._events = iter(events)
        self._lease = lease

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        self._lease.renew_if_due()
        return next(self._events)

    def close(self) -> None:
        self._lease.release()
