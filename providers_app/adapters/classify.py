"""The one place that turns a failed call into a categorised ``ProviderError``.

Order (docs/vendors.md, "Classifying a failure"): the body's specific patterns
and decisive wordings (``wordings.py``) first, then vendor error types and Gemini
canonical statuses, then the HTTP status, which an "overloaded" or "rate limit"
wording may sharpen when it says nothing specific. Four cases would be wrong by
status alone: OpenAI's 429 ``insufficient_quota``, Anthropic's 400 "credit
balance is too low", Gemini's 400 ``API_KEY_INVALID`` and Together's 403 context
overflow. Errors inside a 200 stream go through the same rules with the status
taken from the inner error, if it has one. Transport exceptions and the outcomes
an adapter detects on a 2xx (truncation, bad JSON, content filter) are built here
too, so every category decision is in this module.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import requests
import urllib3.exceptions

from . import jsonsafe
from .errors import Category, ProviderBadResponseError, ProviderError, provider_error
from .hints import MAX_HINT_S, RetryHint, parse_should_retry, retry_hint
from .redaction import scrub_secrets, short_message
from .wordings import Wording

# Response headers that carry the upstream's request id, most specific first.
REQUEST_ID_HEADERS = ("x-request-id", "request-id", "apim-request-id", "x-generation-id")

_LIMIT_ZERO = re.compile(r"\blimit:\s*0(?![\d.])")  # Gemini: the model has no free tier
_HTML_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)

_QUOTA_IDS = frozenset({"insufficient_quota", "billing_error", "insufficient_balance"})
_CONTENT_FILTER_IDS = frozenset(
    {"content_filter", "responsibleaipolicyviolation", "content_policy_violation"}
)
_BAD_KEY_REASONS = frozenset({"API_KEY_INVALID", "API_KEY_EXPIRED"})
# Error ``type``/``code`` values precise enough to beat the status. Generic ones
# such as ``invalid_request_error`` (OpenAI sends it with a 401) are left out.
_SPECIFIC_IDS: dict[str, Category] = {
    "overloaded_error": Category.OVERLOADED,
    "api_error": Category.SERVER_ERROR,
    "rate_limit_error": Category.RATE_LIMIT,
    "rate_limit_exceeded": Category.RATE_LIMIT,
    "rate_limited": Category.RATE_LIMIT,
    "authentication_error": Category.AUTH,
    "invalid_api_key": Category.AUTH,
    "permission_error": Category.PERMISSION,
    "unsupported_country_region_territory": Category.PERMISSION,
    "not_found_error": Category.NOT_FOUND,
    "model_not_found": Category.NOT_FOUND,
    "deploymentnotfound": Category.NOT_FOUND,
    "request_too_large": Category.REQUEST_TOO_LARGE,
    "timeout_error": Category.SERVER_ERROR,
}
# google.rpc canonical codes (Gemini ``error.status``). INVALID_ARGUMENT is generic.
_CANONICAL_STATUS: dict[str, Category] = {
    "UNAVAILABLE": Category.OVERLOADED,
    "RESOURCE_EXHAUSTED": Category.RATE_LIMIT,
    "INTERNAL": Category.SERVER_ERROR,
    "DEADLINE_EXCEEDED": Category.SERVER_ERROR,
    "UNAUTHENTICATED": Category.AUTH,
    "PERMISSION_DENIED": Category.PERMISSION,
    "FAILED_PRECONDITION": Category.PERMISSION,
    "NOT_FOUND": Category.NOT_FOUND,
}
_STATUS_DEFAULTS: dict[int, Category] = {
    400: Category.INVALID_REQUEST,
    401: Category.AUTH,
    402: Category.QUOTA_EXHAUSTED,
    403: Category.PERMISSION,
    404: Category.NOT_FOUND,
    408: Category.TIMEOUT,
    409: Category.SERVER_ERROR,  # a lock conflict; both official SDKs retry it
    413: Category.REQUEST_TOO_LARGE,
    422: Category.INVALID_REQUEST,
    429: Category.RATE_LIMIT,
    498: Category.OVERLOADED,  # Groq flex tier capacity
    503: Category.OVERLOADED,
    529: Category.OVERLOADED,
}


@dataclass(frozen=True)
class ErrorBody:
    """The fields of an error body, whatever shape the vendor used (docs/vendors.md)."""

    message: str = ""
    type: str = ""
    code: str = ""
    numeric_code: int | None = None
    status: str = ""
    inner_code: str = ""
    reasons: tuple[str, ...] = ()
    quota_ids: tuple[str, ...] = ()
    retry_delay: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    request_id: str | None = None

    @property
    def identifiers(self) -> frozenset[str]:
        return frozenset(x.lower() for x in (self.type, self.code, self.inner_code) if x)


def parse_error_body(body: bytes | str | Any) -> ErrorBody:
    """Read an error body leniently: object or string ``error``, flat, ``detail``, HTML, empty."""
    data = _json_or_text(body)
    if isinstance(data, list) and data and isinstance(data[0], dict):
        data = data[0]  # a Gemini non-SSE stream is a JSON array of responses
    if isinstance(data, str):
        return ErrorBody(message=_text_message(data))
    if not isinstance(data, dict):
        return ErrorBody()
    error = data.get("error")
    source = error if isinstance(error, dict) else data
    message = _first_text(
        error if isinstance(error, str) else None, source.get("message"), _detail_text(data)
    )
    code = source.get("code")
    details = source.get("details") if isinstance(source.get("details"), list) else []
    inner = source.get("innererror")
    metadata = source.get("metadata")
    request_id = data.get("request_id") or source.get("request_id")
    return ErrorBody(
        message=message,
        type=_str(source.get("type")),
        code=_str(code),
        numeric_code=_http_status_like(code),
        status=source.get("status") if isinstance(source.get("status"), str) else "",
        inner_code=_str(inner.get("code")) if isinstance(inner, dict) else "",
        reasons=tuple(_detail_values(details, "ErrorInfo", "reason")),
        quota_ids=tuple(_quota_ids(details)),
        retry_delay=next(iter(_detail_values(details, "RetryInfo", "retryDelay")), None),
        metadata=metadata if isinstance(metadata, dict) else {},
        request_id=request_id if isinstance(request_id, str) else None,
    )


def classify_response(
    *,
    provider: str,
    status: int | None,
    headers: Mapping[str, str],
    body: bytes | str | Any,
    secrets: Iterable[str | None] = (),
    now: float | None = None,
) -> ProviderError:
    """Classify a failed HTTP response, or (``status=None``) an error inside a stream."""
    parsed = parse_error_body(body)
    hint = retry_hint(headers, retry_delay=parsed.retry_delay, message=parsed.message, now=now)
    category = _category(status, parsed, hint)
    effective_status = status if status is not None else parsed.numeric_code
    return provider_error(
        category,
        _describe(parsed, effective_status, secrets),
        provider=provider,
        status_code=effective_status,
        retry_after=hint.seconds,
        request_id=request_id_from(headers) or parsed.request_id,
        should_retry=parse_should_retry(headers),
    )


def classify_stream_error(
    *,
    provider: str,
    payload: Any,
    request_id: str | None,
    secrets: Iterable[str | None] = (),
) -> ProviderError:
    """An error event inside a 200 stream; the 200's headers say nothing about it."""
    error = classify_response(
        provider=provider, status=None, headers={}, body=payload, secrets=secrets
    )
    error.request_id = error.request_id or request_id
    return error


def classify_exception(
    exc: BaseException,
    *,
    provider: str,
    secrets: Iterable[str | None] = (),
    request_id: str | None = None,
    timeout_reason: str | None = None,
) -> ProviderError:
    """Map a ``requests``/``urllib3``/socket exception to transport, timeout or config."""
    fields: dict[str, Any] = {"provider": provider, "request_id": request_id}
    if isinstance(exc, requests.ConnectTimeout):
        # The engine's decision reads this exact message: never the client's misfit.
        return provider_error(Category.TIMEOUT, "connect timed out", **fields)
    if isinstance(
        exc, requests.Timeout | urllib3.exceptions.TimeoutError | socket.timeout | TimeoutError
    ):
        return provider_error(Category.TIMEOUT, timeout_reason or "read timed out", **fields)
    if isinstance(
        exc,
        requests.exceptions.InvalidURL
        | requests.exceptions.MissingSchema
        | requests.exceptions.InvalidSchema
        | urllib3.exceptions.LocationParseError,
    ):
        return provider_error(Category.NOT_FOUND, "invalid base_url in the config", **fields)
    if isinstance(exc, requests.exceptions.ContentDecodingError | urllib3.exceptions.DecodeError):
        return provider_error(Category.MALFORMED_RESPONSE, "body could not be decoded", **fields)
    detail = scrub_secrets(short_message(_root_cause(exc), limit=200), secrets)
    return provider_error(Category.TRANSPORT, detail, **fields)


def timeout_error(provider: str, reason: str, *, request_id: str | None = None) -> ProviderError:
    return provider_error(Category.TIMEOUT, reason, provider=provider, request_id=request_id)


def truncated_stream_error(provider: str, *, request_id: str | None) -> ProviderError:
    return provider_error(
        Category.TRANSPORT,
        "stream ended without its terminator (truncated)",
        provider=provider,
        request_id=request_id,
    )


def malformed_response_error(
    provider: str,
    detail: str,
    *,
    status_code: int | None = None,
    request_id: str | None = None,
    category: Category = Category.MALFORMED_RESPONSE,
) -> ProviderError:
    """A 2xx that is no usable answer (``category`` RESPONSE_FORMAT_UNMET: the
    answer misses the client's own response_format, see ``fit.py``)."""
    return provider_error(
        category,
        detail,
        provider=provider,
        status_code=status_code,
        request_id=request_id,
    )


class UndecodableEventError(ProviderBadResponseError):
    """One stream event (or NDJSON line) whose data could not be decoded.

    ``streaming.run_stream`` skips a few of these in a row; anywhere else it is an
    ordinary ``malformed_response``.
    """


def undecodable_event_error(
    provider: str, detail: str, *, request_id: str | None = None
) -> UndecodableEventError:
    return UndecodableEventError(detail, provider=provider, request_id=request_id)


def content_filter_error(
    provider: str, reason: str, *, partial_text: str = "", request_id: str | None = None
) -> ProviderError:
    """A blocked prompt or a filtered answer: an outcome, never an empty success."""
    return provider_error(
        Category.CONTENT_FILTER,
        f"blocked by the provider's content policy ({reason})",
        provider=provider,
        request_id=request_id,
        partial_text=partial_text,
    )


def missing_key_error(provider: str) -> ProviderError:
    return provider_error(
        Category.AUTH,
        "no API key configured for this provider (is its api_key_env variable set?)",
        provider=provider,
    )


def unexpected_redirect_error(provider: str, status: int) -> ProviderError:
    # Redirects are not followed: requests would carry api-key/x-api-key headers to
    # the new host. A redirect means the base_url is wrong, which will not heal.
    return provider_error(
        Category.NOT_FOUND,
        f"unexpected redirect (HTTP {status}); check the provider's base_url",
        provider=provider,
        status_code=status,
    )


def model_not_listed_error(provider: str, model: str) -> ProviderError:
    """A health probe found the provider up but without the configured model."""
    return provider_error(
        Category.NOT_FOUND, f"model {model!r} is not served by this provider", provider=provider
    )


def request_id_from(headers: Mapping[str, str]) -> str | None:
    lowered = {name.lower(): value for name, value in headers.items()}
    return next((lowered[name] for name in REQUEST_ID_HEADERS if lowered.get(name)), None)


def _category(status: int | None, body: ErrorBody, hint: RetryHint) -> Category:
    wording = Wording(body.message)
    category = _category_from_body(status, body, wording)
    if category is None:
        category = _category_from_status(status, body)
        if category in _GENERIC:
            category = wording.first_meaning(_SHARPENING_MEANINGS) or category
    # A wait beyond the clamp is a quota wall (Azure's retry-after: 86400), not a blip.
    if category is Category.RATE_LIMIT and (hint.raw_seconds or 0) > MAX_HINT_S:
        return Category.QUOTA_EXHAUSTED
    return category


# Wordings of these meanings only sharpen a status that says nothing specific
# (a plain 400 or 500, or an error inside a 200 stream): "overloaded" in a 429 is
# still a rate limit, and "rate limit" in a 503 still an outage.
_SHARPENING_MEANINGS = (Category.OVERLOADED, Category.RATE_LIMIT)
_GENERIC = frozenset({Category.INVALID_REQUEST, Category.SERVER_ERROR})


def _category_from_body(status: int | None, body: ErrorBody, wording: Wording) -> Category | None:
    """The body's meaning, most specific first; None when only the status can tell."""
    text = body.message.lower()
    ids = body.identifiers
    if (
        ids & _QUOTA_IDS
        or wording.means(Category.QUOTA_EXHAUSTED)
        or any("perday" in quota_id.lower() for quota_id in body.quota_ids)
        or _LIMIT_ZERO.search(text)
    ):
        return Category.QUOTA_EXHAUSTED
    if _BAD_KEY_REASONS & set(body.reasons):
        return Category.AUTH
    if "context_length_exceeded" in ids or wording.means(Category.CONTEXT_LENGTH):
        return Category.CONTEXT_LENGTH
    if (
        ids & _CONTENT_FILTER_IDS
        or _is_moderation_block(status, body)
        or wording.means(Category.CONTENT_FILTER)
    ):
        return Category.CONTENT_FILTER
    # Before the error type: Ollama's OpenAI-compatible path sends a missing
    # model as type "api_error", and OpenRouter a routing dead end as a 503.
    if wording.means(Category.NOT_FOUND):
        return Category.NOT_FOUND
    for identifier in (body.type, body.code):
        if identifier.lower() in _SPECIFIC_IDS:
            return _SPECIFIC_IDS[identifier.lower()]
    if body.status in _CANONICAL_STATUS:
        return _CANONICAL_STATUS[body.status]
    return None


def _category_from_status(status: int | None, body: ErrorBody) -> Category:
    effective = status if status is not None and status >= 400 else body.numeric_code
    if effective is None:
        # An error event inside a 200 stream with nothing more specific to go on.
        return Category.SERVER_ERROR
    if effective in _STATUS_DEFAULTS:
        return _STATUS_DEFAULTS[effective]
    return Category.SERVER_ERROR if effective >= 500 else Category.INVALID_REQUEST


def _is_moderation_block(status: int | None, body: ErrorBody) -> bool:
    """OpenRouter answers a moderation flag with 403 and ``metadata.reasons``/``flagged_input``."""
    return status == 403 and bool({"reasons", "flagged_input"} & set(body.metadata))


def _describe(body: ErrorBody, status: int | None, secrets: Iterable[str | None]) -> str:
    message = body.message or (f"HTTP {status} with an empty body" if status else "error")
    return scrub_secrets(short_message(message), secrets)


def _json_or_text(body: bytes | str | Any) -> Any:
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    if not isinstance(body, str):
        return body
    stripped = body.strip()
    if stripped[:1] in ("{", "["):
        try:
            return jsonsafe.loads(stripped)
        except ValueError:
            pass
    return stripped


def _text_message(text: str) -> str:
    """An HTML gateway page says the most in its title; plain text speaks for itself."""
    title = _HTML_TITLE.search(text)
    if title:
        return "non-JSON error page: " + " ".join(title.group(1).split())
    if text.lstrip().startswith("<"):
        return "non-JSON error page"
    return text[:500]


def _detail_text(data: Mapping[str, Any]) -> str:
    """FastAPI ``detail``: a string, or a list of ``{loc, msg}`` validation errors."""
    detail = data.get("detail")
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict):
                location = ".".join(str(part) for part in item.get("loc", ()))
                parts.append(f"{location}: {item.get('msg', '')}".strip(": "))
        return "; ".join(parts)
    return ""


def _detail_values(details: list[Any], type_suffix: str, key: str) -> Iterable[str]:
    for detail in details:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith(type_suffix):
            value = detail.get(key)
            if isinstance(value, str):
                yield value


def _quota_ids(details: list[Any]) -> Iterable[str]:
    for detail in details:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("QuotaFailure"):
            for violation in detail.get("violations") or ():
                if isinstance(violation, dict) and isinstance(violation.get("quotaId"), str):
                    yield violation["quotaId"]


def _first_text(*candidates: Any) -> str:
    return next((c for c in candidates if isinstance(c, str) and c.strip()), "")


def _str(value: Any) -> str:
    return "" if value is None else str(value)


def _http_status_like(code: Any) -> int | None:
    """``error.code`` is an int (Gemini, vLLM, OpenRouter) or a string ("429" on Azure)."""
    if isinstance(code, bool):
        return None
    if isinstance(code, str) and code.isdigit():
        code = int(code)
    return code if isinstance(code, int) and 100 <= code <= 599 else None


def _root_cause(exc: BaseException) -> str:
    """A short, host-free description of why the connection failed."""
    chain = _exception_chain(exc)
    for kind, description in _ROOT_CAUSES:
        if any(isinstance(link, kind) for link in chain):
            return description
    return f"connection failed ({type(exc).__name__})"


_ROOT_CAUSES: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], str], ...] = (
    (ConnectionRefusedError, "connection refused"),
    (ConnectionResetError, "connection reset by peer"),
    (BrokenPipeError, "connection closed by peer"),
    (socket.gaierror, "name resolution failed"),
    (requests.exceptions.SSLError, "TLS error"),
    (
        (urllib3.exceptions.IncompleteRead, urllib3.exceptions.ProtocolError),
        "connection broken before the body was complete",
    ),
)


def _exception_chain(exc: BaseException) -> list[BaseException]:
    """Every exception reachable through args, ``reason``, cause and context."""
    found: list[BaseException] = []
    pending = [exc]
    while pending:
        current = pending.pop()
        if any(current is seen for seen in found):
            continue
        found.append(current)
        links = [arg for arg in getattr(current, "args", ()) if isinstance(arg, BaseException)]
        links += [getattr(current, "reason", None), current.__cause__, current.__context__]
        pending.extend(link for link in links if isinstance(link, BaseException))
    return found
