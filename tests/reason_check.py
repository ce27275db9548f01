"""The suite-wide check that no bare reason string is written (tests/conftest.py)."""

from providers_app.engine import metrics
from providers_app.reasons import Reason

# The metrics with a `reason` label.
REASON_METRICS = (metrics.FAILOVERS, metrics.CONTINUATIONS, metrics.SKIPS)

# Reasons written on purpose outside the vocabulary: the values releases before
# migration 0005 stored, which its own test writes to migrate them.
LEGACY = {"disable"}


def check_event_reason(sender, instance, **kwargs) -> None:
    """pre_save of every model: an event's or a trace's reasons (its steps' too)."""
    if sender.__name__ not in ("FailoverEvent", "RequestTrace"):
        return
    reasons = [instance.reason]
    reasons += [step.get("reason") for step in getattr(instance, "steps", None) or ()]
    for reason in reasons:
        if reason and reason not in LEGACY:
            assert reason in Reason.values, f"{reason!r} is not a Reason (providers_app/reasons.py)"


def check_trace_reasons(traces) -> None:
    """bulk_create sends no pre_save: the buffered traces are checked here."""
    for trace in traces:
        check_event_reason(type(trace), trace)


def bare_metric_reasons() -> set[str]:
    """`reason` label values of /metrics that are not Reason members."""
    found = set()
    for metric in REASON_METRICS:
        for sample in metric.collect()[0].samples:
            reason = sample.labels.get("reason")
            if sample.name.endswith("_total") and reason and reason not in Reason.values:
                found.add(f"{sample.name}{{reason={reason}}}")
    return found
