"""The provider error tree and the table that says what each failure category means.

Every adapter failure leaves as a ``ProviderError`` subclass with a ``Category``.
``POLICY`` (docs/engine.md, "What each failure does") is the static table: per
category, whether a retry on
the same provider may help, whether another provider may, and what the breaker
does. It is applied, with the settings and the time in force, by one function:
``engine/decision.py::decide``. Which category a response gets is decided in
``classify.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar, Literal

from .redaction import scrub_secrets

BreakerEffect = Literal["failure", "open_long", "cooldown", "ignore"]


class Category(StrEnum):
    """What went wrong, independent of the vendor that said so."""

    TRANSPORT = "transport"
    TIMEOUT = "timeout"
    SERVER_ERROR = "server_error"
    OVERLOADED = "overloaded"
    RATE_LIMIT = "rate_limit"
    QUOTA_EXHAUSTED = "quota_exhausted"
    AUTH = "auth"
    PERMISSION = "permission"
    NOT_FOUND = "not_found"
    CONTEXT_LENGTH = "context_length"
    CONTENT_FILTER = "content_filter"
    INVALID_REQUEST = "invalid_request"
    REQUEST_TOO_LARGE = "request_too_large"
    MALFORMED_RESPONSE = "malformed_response"
    # Our own cap on a healthy stream's length (FALLBACK_STREAM_MAX_S), not a fault.
    STREAM_MAX_DURATION = "stream_max_duration"
    # The client's misfits (DESIGN §4, §12): what the client controls never
    # counts against a provider. An answer that misses the client's own
    # response_format (json_object or json_schema) ...
    RESPONSE_FORMAT_UNMET = "response_format_unmet"
    # ... and a non-streamed request asking for more output than a provider can
    # produce in its timeout, which then timed out (decision.client_misfit).
    OUTPUT_TOO_SLOW = "output_too_slow"


@dataclass(frozen=True)
class CategoryPolicy:
    """What one category of failure does to the request and to the provider.

    ``retry_same`` and ``failover`` are the defaults of the table; two rows carry a
    condition the service must check, flagged so that it cannot be missed:
    ``retry_only_if_hint_fits`` (rate limits: wait only when the hint fits the
    inline cap and the deadline) and ``failover_only_to_larger_window`` (context
    length: only a provider with a larger ``context_window`` can help).
    """

    retry_same: bool
    failover: bool
    breaker: BreakerEffect
    retry_only_if_hint_fits: bool = False
    failover_only_to_larger_window: bool = False
    # The client's own misfit: failed over a bounded number of times
    # (FALLBACK_MISFIT_FAILOVERS), never continued after output, and it ends as
    # the client's error; breaker, cooldown and health are untouched.
    client_misfit: bool = False


_TRANSIENT = CategoryPolicy(retry_same=True, failover=True, breaker="failure")
_CONFIG = CategoryPolicy(retry_same=False, failover=True, breaker="open_long")
_CALLERS_FAULT = CategoryPolicy(retry_same=False, failover=False, breaker="ignore")
_CLIENT_MISFIT = CategoryPolicy(
    retry_same=False, failover=True, breaker="ignore", client_misfit=True
)

POLICY: dict[Category, CategoryPolicy] = {
    Category.TRANSPORT: _TRANSIENT,
    # A provider that stayed silent rarely answers the second time, and each
    # retry would cost the whole timeout again: fail over at once.
    Category.TIMEOUT: CategoryPolicy(retry_same=False, failover=True, breaker="failure"),
    Category.SERVER_ERROR: _TRANSIENT,
    Category.OVERLOADED: _TRANSIENT,
    # A 429 means "healthy but busy for you": cool down instead of counting.
    Category.RATE_LIMIT: CategoryPolicy(
        retry_same=True, failover=True, breaker="cooldown", retry_only_if_hint_fits=True
    ),
    # Billing and configuration states do not heal by retrying.
    Category.QUOTA_EXHAUSTED: _CONFIG,
    Category.AUTH: _CONFIG,
    Category.PERMISSION: _CONFIG,
    Category.NOT_FOUND: _CONFIG,
    Category.CONTEXT_LENGTH: CategoryPolicy(
        retry_same=False, failover=True, breaker="ignore", failover_only_to_larger_window=True
    ),
    # Fail fast: another provider is a policy opt-in the service may offer.
    Category.CONTENT_FILTER: _CALLERS_FAULT,
    Category.INVALID_REQUEST: _CALLERS_FAULT,
    Category.REQUEST_TOO_LARGE: _CALLERS_FAULT,
    Category.MALFORMED_RESPONSE: _TRANSIENT,
    Category.STREAM_MAX_DURATION: CategoryPolicy(
        retry_same=False, failover=False, breaker="ignore"
    ),
    Category.RESPONSE_FORMAT_UNMET: _CLIENT_MISFIT,
    Category.OUTPUT_TOO_SLOW: _CLIENT_MISFIT,
}


class ProviderError(Exception):
    """A classified failure of one call to one provider.

    ``message`` is short and already scrubbed of secrets; the raw upstream body is
    never kept, nor the ``requests`` request (its headers hold the key).
    ``output_produced`` and ``partial_text`` are set on errors raised by a stream
    after it yielded model output: the commit point has passed.
    """

    categories: ClassVar[frozenset[Category]] = frozenset(Category)
    # What ``category`` means when omitted; the root class has none and requires it.
    default_category: ClassVar[Category | None] = None

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        category: Category | str | None = None,
        status_code: int | None = None,
        retry_after: float | None = None,
        request_id: str | None = None,
        should_retry: bool | None = None,
        output_produced: bool = False,
        partial_text: str = "",
    ) -> None:
        if category is None:
            if self.default_category is None:
                raise TypeError(f"{type(self).__name__} needs a category")
            category = self.default_category
        category = Category(category)
        if category not in self.categories:
            raise ValueError(f"{type(self).__name__} cannot carry category {category}")
        # Defence in depth: callers scrub the exact key, this catches key shapes.
        self.message = scrub_secrets(message)
        self.provider = provider
        self.category = category
        self.status_code = status_code
        self.retry_after = retry_after
        self.request_id = request_id
        self.should_retry = should_retry
        # Usage the vendor reported before a stream failed (adapters/streaming.py).
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.cached_input_tokens: int | None = None
        self.output_produced = output_produced
        self.partial_text = partial_text
        super().__init__(self.message)

    @property
    def policy(self) -> CategoryPolicy:
        return POLICY[self.category]

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only fields: the default pickling (cls(*args)) could not rebuild
        # the error, and Celery results travel pickled or serialised.
        state = {
            "provider": self.provider,
            "category": self.category,
            "status_code": self.status_code,
            "retry_after": self.retry_after,
            "request_id": self.request_id,
            "should_retry": self.should_retry,
            "output_produced": self.output_produced,
            "partial_text": self.partial_text,
        }
        return (_rebuild_error, (type(self), self.message, state))

    def __str__(self) -> str:
        status = f" HTTP {self.status_code}" if self.status_code is not None else ""
        return f"[{self.provider}] {self.category}{status}: {self.message}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(provider={self.provider!r}, category={self.category.value!r}, "
            f"status_code={self.status_code!r}, retry_after={self.retry_after!r}, "
            f"request_id={self.request_id!r}, should_retry={self.should_retry!r}, "
            f"output_produced={self.output_produced!r}, message={self.message!r})"
        )


def _rebuild_error(
    error_class: type[ProviderError], message: str, state: dict[str, object]
) -> ProviderError:
    return error_class(message, **state)  # type: ignore[arg-type]


class ProviderTransportError(ProviderError):
    """Connect, DNS, TLS, reset or truncated body: no usable answer arrived."""

    categories = frozenset(
        {
            Category.TRANSPORT,
            Category.TIMEOUT,
            Category.STREAM_MAX_DURATION,
            Category.OUTPUT_TOO_SLOW,
        }
    )
    default_category = Category.TRANSPORT


class ProviderTimeoutError(ProviderTransportError):
    """A connect, read, first-token, idle or whole-attempt time limit ran out."""

    categories = frozenset(
        {Category.TIMEOUT, Category.STREAM_MAX_DURATION, Category.OUTPUT_TOO_SLOW}
    )
    default_category = Category.TIMEOUT


class ProviderServerError(ProviderError):
    """The provider failed (5xx) or is overloaded (503, 529, Gemini UNAVAILABLE)."""

    categories = frozenset({Category.SERVER_ERROR, Category.OVERLOADED})
    default_category = Category.SERVER_ERROR


class ProviderRateLimitError(ProviderError):
    """A transient rate limit; ``retry_after`` says how long the provider wants."""

    categories = frozenset({Category.RATE_LIMIT})
    default_category = Category.RATE_LIMIT


class ProviderQuotaError(ProviderError):
    """Out of money or out of quota until a reset or a billing change."""

    categories = frozenset({Category.QUOTA_EXHAUSTED})
    default_category = Category.QUOTA_EXHAUSTED


class ProviderAuthError(ProviderError):
    """Bad key, forbidden, or unknown model/deployment: this provider's configuration."""

    categories = frozenset({Category.AUTH, Category.PERMISSION, Category.NOT_FOUND})
    default_category = Category.AUTH


class ProviderContextLengthError(ProviderError):
    """The prompt does not fit this model's context window."""

    categories = frozenset({Category.CONTEXT_LENGTH})
    default_category = Category.CONTEXT_LENGTH


class ProviderContentFilterError(ProviderError):
    """The prompt or the answer was blocked by the provider's content policy."""

    categories = frozenset({Category.CONTENT_FILTER})
    default_category = Category.CONTENT_FILTER


class ProviderBadRequestError(ProviderError):
    """The caller's request is wrong and would fail on every provider."""

    categories = frozenset({Category.INVALID_REQUEST, Category.REQUEST_TOO_LARGE})
    default_category = Category.INVALID_REQUEST


class ProviderBadResponseError(ProviderError):
    """A 2xx whose body cannot be understood."""

    categories = frozenset({Category.MALFORMED_RESPONSE, Category.RESPONSE_FORMAT_UNMET})
    default_category = Category.MALFORMED_RESPONSE


ERROR_CLASS: dict[Category, type[ProviderError]] = {
    Category.TRANSPORT: ProviderTransportError,
    Category.TIMEOUT: ProviderTimeoutError,
    Category.SERVER_ERROR: ProviderServerError,
    Category.OVERLOADED: ProviderServerError,
    Category.RATE_LIMIT: ProviderRateLimitError,
    Category.QUOTA_EXHAUSTED: ProviderQuotaError,
    Category.AUTH: ProviderAuthError,
    Category.PERMISSION: ProviderAuthError,
    Category.NOT_FOUND: ProviderAuthError,
    Category.CONTEXT_LENGTH: ProviderContextLengthError,
    Category.CONTENT_FILTER: ProviderContentFilterError,
    Category.INVALID_REQUEST: ProviderBadRequestError,
    Category.REQUEST_TOO_LARGE: ProviderBadRequestError,
    Category.MALFORMED_RESPONSE: ProviderBadResponseError,
    Category.STREAM_MAX_DURATION: ProviderTimeoutError,
    Category.RESPONSE_FORMAT_UNMET: ProviderBadResponseError,
    Category.OUTPUT_TOO_SLOW: ProviderTimeoutError,
}


def provider_error(category: Category, message: str, **fields: object) -> ProviderError:
    """Build the subclass that matches ``category``."""
    return ERROR_CLASS[category](message, category=category, **fields)  # type: ignore[arg-type]
