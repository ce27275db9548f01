"""Issue 23 item 10: reasons are one vocabulary (providers_app/reasons.py)."""

import pytest

from providers_app.adapters.capabilities import CAPABILITIES
from providers_app.adapters.errors import Category
from providers_app.engine import metrics
from providers_app.models import FailoverEvent, RequestTrace
from providers_app.reasons import Reason, capability_reason
from tests.reason_check import REASON_METRICS, bare_metric_reasons


def test_every_failure_category_is_a_reason():
    assert {c.value for c in Category} <= set(Reason.values)


@pytest.mark.parametrize("subset", [FailoverEvent.SkipReason, FailoverEvent.ManualReason])
def test_skip_and_manual_reasons_are_subsets_with_the_same_labels(subset):
    for member in subset:
        assert Reason(member.value).label == member.label


def test_every_capability_has_its_skip_reason():
    assert [capability_reason(c) for c in CAPABILITIES] == [
        Reason.LACKS_TOOLS,
        Reason.LACKS_STRUCTURED_OUTPUT,
        Reason.LACKS_IMAGES,
        Reason.LACKS_PREFILL,
    ]
    with pytest.raises(ValueError, match="lacks_telepathy"):
        capability_reason("telepathy")


def test_the_event_log_offers_the_reasons_labels():
    field = FailoverEvent._meta.get_field("reason")
    assert dict(field.choices)[Reason.OPEN] == "Breaker open"


def test_the_metric_labels_carry_reason_values():
    assert all("reason" in m._labelnames for m in REASON_METRICS)


def test_the_suite_wide_check_catches_a_bare_reason(db):
    """The check tests/conftest.py runs around every test is not a no-op."""
    from providers_app.engine.events import failover_event_record

    with pytest.raises(AssertionError, match="not a Reason"):
        failover_event_record(kind="failover", reason="went_wrong")
    assert failover_event_record(kind="failover", reason=Reason.TIMEOUT) is not None
    metrics.SKIPS.labels(provider="p", reason="went_wrong").inc()
    try:
        assert bare_metric_reasons() == {"fallback_skips_total{reason=went_wrong}"}
    finally:
        metrics.SKIPS.remove("p", "went_wrong")


def test_the_suite_wide_check_reads_a_traces_steps(db):
    from providers_app.engine.tracing import trace_buffer

    trace = RequestTrace(request_id="r", outcome="failed", steps=[{"reason": "went_wrong"}])
    with pytest.raises(AssertionError, match="not a Reason"):
        trace_buffer._save([trace])


def test_a_reason_reads_as_its_label_and_an_old_value_as_itself():
    from providers_app.reasons import reason_label

    assert reason_label("rate_limit") == "Rate limited"
    assert reason_label("disable") == "disable"  # stored before 0005
    assert reason_label("") == "-"


def test_every_continuation_dialect_that_can_be_refused_is_a_reason():
    from providers_app.adapters.continuation import DIALECTS, NONE

    assert {d for d in DIALECTS if d != NONE} <= set(Reason.values)
