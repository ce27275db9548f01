"""The classification table (docs/engine.md, "What each failure does") and the error
tree. The table is applied
by ``engine/decision.py::decide`` (tested in ``tests/engine/test_decision.py``)."""

from __future__ import annotations

import pickle

import pytest

from providers_app.adapters import (
    POLICY,
    Category,
    ProviderAuthError,
    ProviderBadRequestError,
    ProviderError,
    ProviderServerError,
    ProviderTimeoutError,
    ProviderTransportError,
)
from providers_app.adapters.errors import ERROR_CLASS, provider_error

# category: (retry on the same provider, fail over, breaker) — docs/engine.md.
DESIGN_TABLE = {
    "transport": (True, True, "failure"),
    "timeout": (False, True, "failure"),  # a silent provider: fail over at once
    "server_error": (True, True, "failure"),
    "overloaded": (True, True, "failure"),
    "rate_limit": (True, True, "cooldown"),
    "quota_exhausted": (False, True, "open_long"),
    "auth": (False, True, "open_long"),
    "permission": (False, True, "open_long"),
    "not_found": (False, True, "open_long"),
    "context_length": (False, True, "ignore"),
    "content_filter": (False, False, "ignore"),
    "invalid_request": (False, False, "ignore"),
    "request_too_large": (False, False, "ignore"),
    "malformed_response": (True, True, "failure"),
    "stream_max_duration": (False, False, "ignore"),
    # The client's misfits (DESIGN §4, §12): another provider may meet the
    # request, but the breaker never hears of it.
    "response_format_unmet": (False, True, "ignore"),
    "output_too_slow": (False, True, "ignore"),
}


@pytest.mark.parametrize("category", list(Category))
def test_policy_matches_the_design_table(category: Category) -> None:
    policy = POLICY[category]
    assert (policy.retry_same, policy.failover, policy.breaker) == DESIGN_TABLE[category]


def test_only_the_conditional_rows_carry_their_condition() -> None:
    hinted = {c for c, p in POLICY.items() if p.retry_only_if_hint_fits}
    larger_window = {c for c, p in POLICY.items() if p.failover_only_to_larger_window}
    assert hinted == {Category.RATE_LIMIT}
    assert larger_window == {Category.CONTEXT_LENGTH}


@pytest.mark.parametrize("category", list(Category))
def test_every_category_has_its_error_class(category: Category) -> None:
    error = provider_error(category, "boom", provider="p")
    assert type(error) is ERROR_CLASS[category]
    assert error.category is category
    assert error.policy is POLICY[category]


def test_the_tree_mirrors_http_semantics() -> None:
    assert issubclass(ProviderTimeoutError, ProviderTransportError)
    assert isinstance(provider_error(Category.OVERLOADED, "x", provider="p"), ProviderServerError)
    assert isinstance(provider_error(Category.NOT_FOUND, "x", provider="p"), ProviderAuthError)
    assert isinstance(
        provider_error(Category.REQUEST_TOO_LARGE, "x", provider="p"), ProviderBadRequestError
    )


def test_a_subclass_refuses_a_category_it_does_not_represent() -> None:
    with pytest.raises(ValueError, match="cannot carry"):
        ProviderTimeoutError("x", provider="p", category=Category.AUTH)


def test_a_subclass_defaults_to_its_main_category() -> None:
    assert ProviderTimeoutError("x", provider="p").category is Category.TIMEOUT
    assert ProviderServerError("x", provider="p").category is Category.SERVER_ERROR
    assert ProviderAuthError("x", provider="p").category is Category.AUTH
    with pytest.raises(TypeError, match="needs a category"):
        ProviderError("x", provider="p")


def test_str_and_repr_name_provider_category_and_status() -> None:
    error = provider_error(Category.RATE_LIMIT, "slow down", provider="groq", status_code=429)
    assert str(error) == "[groq] rate_limit HTTP 429: slow down"
    assert repr(error).startswith("ProviderRateLimitError(provider='groq', category='rate_limit'")


def test_errors_survive_pickling() -> None:
    error = provider_error(
        Category.OVERLOADED,
        "busy",
        provider="p",
        status_code=529,
        retry_after=1.5,
        output_produced=True,
        partial_text="Once",
    )
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 (our own bytes)
    assert type(copy) is type(error)
    assert repr(copy) == repr(error)
    assert copy.partial_text == "Once"
