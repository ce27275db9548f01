"""`decide()`: the one retry / fail over / stop decision, with the settings in force."""

import pytest

from providers_app.adapters.errors import Category, ProviderError, provider_error
from providers_app.engine.decision import Action, client_misfit, decide, window_may_fit


def _error(category: Category, **fields) -> ProviderError:
    return provider_error(category, "x", provider="p", **fields)


def _decide(error: ProviderError, **situation):
    return decide(error, **{"attempt": 1, "max_attempts": 3, "time_left_s": 40.0, **situation})


@pytest.mark.parametrize(
    ("error", "action", "cooldown"),
    [
        pytest.param(_error(Category.SERVER_ERROR), Action.RETRY, None, id="5xx-backoff"),
        pytest.param(_error(Category.RATE_LIMIT), Action.RETRY, 1.0, id="429-no-hint"),
        pytest.param(
            _error(Category.SERVER_ERROR, retry_after=30.0),
            Action.FAIL_OVER,
            30.0,
            id="5xx-hint-over-cap",
        ),
        pytest.param(
            _error(Category.RATE_LIMIT, retry_after=30.0),
            Action.FAIL_OVER,
            30.0,
            id="429-hint-over-cap",
        ),
        pytest.param(
            _error(Category.SERVER_ERROR, should_retry=False),
            Action.FAIL_OVER,
            None,
            id="x-should-retry-false",
        ),
        pytest.param(
            _error(Category.QUOTA_EXHAUSTED, should_retry=True),
            Action.FAIL_OVER,
            None,
            id="true-cannot-upgrade",
        ),
        pytest.param(_error(Category.AUTH), Action.FAIL_OVER, None, id="auth"),
        pytest.param(_error(Category.INVALID_REQUEST), Action.STOP, None, id="400-fails-fast"),
        pytest.param(_error(Category.CONTENT_FILTER), Action.STOP, None, id="filter-fails-fast"),
        pytest.param(
            _error(Category.STREAM_MAX_DURATION), Action.STOP, None, id="stream-max-is-ours"
        ),
    ],
)
def test_decide_with_default_settings(error, action, cooldown):
    decision = _decide(error)
    assert decision.action is action
    assert decision.cooldown_s == cooldown


def test_a_hint_within_the_inline_cap_is_waited_out_never_shortened(settings):
    settings.FALLBACK_MAX_INLINE_RETRY_AFTER_S = 5.0
    decision = _decide(_error(Category.SERVER_ERROR, retry_after=2.0))
    assert decision.action is Action.RETRY
    assert 2.0 <= decision.wait_s <= 2.4


def test_a_hint_that_does_not_fit_the_time_left_fails_over_and_cools_down(settings):
    settings.FALLBACK_MAX_INLINE_RETRY_AFTER_S = 30.0
    decision = _decide(_error(Category.OVERLOADED, retry_after=9.0), time_left_s=9.0)
    assert (decision.action, decision.cooldown_s) == (Action.FAIL_OVER, 9.0)
    assert "time left" in decision.why


def test_no_retry_when_the_wait_would_leave_less_than_the_minimum_attempt(settings):
    settings.FALLBACK_MIN_ATTEMPT_S = 2.0
    settings.FALLBACK_BACKOFF_BASE_S = 0.0
    assert _decide(_error(Category.SERVER_ERROR), time_left_s=1.9).action is Action.FAIL_OVER
    assert _decide(_error(Category.SERVER_ERROR), time_left_s=2.1).action is Action.RETRY


@pytest.mark.parametrize(
    ("situation", "why"),
    [
        ({"probe": True}, "probe"),
        ({"breaker_opened": True}, "opened the breaker"),
        ({"attempt": 3}, "attempt(s) made"),
        ({"budget_allows": lambda: False}, "retry budget"),
    ],
)
def test_each_reason_not_to_retry_fails_over(situation, why):
    decision = _decide(_error(Category.SERVER_ERROR), **situation)
    assert decision.action is Action.FAIL_OVER
    assert why in decision.why


def test_the_budget_is_asked_only_when_a_retry_is_otherwise_allowed():
    asked = []
    _decide(_error(Category.AUTH), budget_allows=lambda: asked.append(1) or True)
    _decide(_error(Category.SERVER_ERROR), attempt=3, budget_allows=lambda: asked.append(1))
    assert asked == []


def test_output_already_sent_continues_a_failover_category_and_never_retries():
    decision = _decide(_error(Category.SERVER_ERROR), output_sent=True)
    assert decision.action is Action.CONTINUE


@pytest.mark.parametrize(
    ("category", "tool_calls_sent", "why"),
    [
        (Category.STREAM_MAX_DURATION, False, "maximum duration"),
        (Category.CONTENT_FILTER, False, "not failed over"),
        (Category.TIMEOUT, True, "tool call was partly sent"),
    ],
)
def test_output_already_sent_stops_when_the_answer_cannot_be_continued(
    category, tool_calls_sent, why
):
    decision = _decide(_error(category), output_sent=True, tool_calls_sent=tool_calls_sent)
    assert decision.action is Action.STOP
    assert why in decision.why


def test_content_filter_fails_over_only_when_the_setting_allows(settings):
    settings.FALLBACK_FAILOVER_ON_CONTENT_FILTER = True
    assert _decide(_error(Category.CONTENT_FILTER)).action is Action.FAIL_OVER


def test_context_length_fails_over_only_to_a_larger_window():
    decision = _decide(_error(Category.CONTEXT_LENGTH))
    assert (decision.action, decision.only_larger_window) == (Action.FAIL_OVER, True)
    assert window_may_fit(200_000, [128_000])
    assert not window_may_fit(100_000, [128_000])


def test_an_unknown_window_may_be_larger():
    assert window_may_fit(None, [128_000])
    assert window_may_fit(8_000, [None])
    assert not window_may_fit(8_000, [None, 8_000])


def test_a_first_provider_never_takes_the_whole_deadline_while_others_wait():
    from providers_app.engine.decision import provider_time_left_s

    assert provider_time_left_s(45.0, others_waiting=True) == pytest.approx(33.75)
    assert provider_time_left_s(45.0, others_waiting=False) == 45.0


def test_a_timeout_fails_over_without_retrying_the_silent_provider():
    decision = _decide(_error(Category.TIMEOUT))
    assert decision.action is Action.FAIL_OVER


# -- the client's misfits (DESIGN §4, §12) -----------------------------------------

MISFITS = (Category.RESPONSE_FORMAT_UNMET, Category.OUTPUT_TOO_SLOW)


@pytest.mark.parametrize("category", MISFITS)
def test_a_misfit_fails_over_a_bounded_number_of_times_and_never_cools_down(category, settings):
    settings.FALLBACK_MISFIT_FAILOVERS = 2
    error = _error(category, retry_after=30.0)
    first, second, third = (_decide(error, earlier_misfits=n) for n in (0, 1, 2))
    assert (first.action, second.action, third.action) == (
        Action.FAIL_OVER,
        Action.FAIL_OVER,
        Action.STOP,
    )
    assert {first.cooldown_s, second.cooldown_s, third.cooldown_s} == {None}
    assert error.policy.breaker == "ignore"


@pytest.mark.parametrize("category", MISFITS)
def test_a_misfit_after_output_is_never_continued(category):
    assert _decide(_error(category), output_sent=True).action is Action.STOP


@pytest.mark.parametrize(
    ("message", "max_tokens", "streamed", "timeout", "client_s"),
    [
        ("read timed out", 60000, False, 30.0, True),  # 600 s of output at 100 tokens/s
        ("read timed out", 3000, False, 30.0, False),  # fits 30 s: a silent provider
        ("read timed out", None, False, 30.0, False),  # the client asked nothing special
        ("read timed out", 60000, True, 30.0, False),  # streams have a first-token limit
        ("connect timed out", 60000, False, 30.0, False),  # never the client's
    ],
)
def test_a_timeout_is_the_clients_only_when_it_asked_more_than_the_time_allows(
    message, max_tokens, streamed, timeout, client_s
):
    error = provider_error(Category.TIMEOUT, message, provider="p")
    judged = client_misfit(
        error, max_tokens=max_tokens, streamed=streamed, attempt_timeout_s=timeout
    )
    assert (judged.category == Category.OUTPUT_TOO_SLOW) is client_s
    assert (judged is error) is not client_s
