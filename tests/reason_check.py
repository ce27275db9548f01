"""The suite-wide check that the engine writes no bare reason string (tests/conftest.py).

What is checked is what the app writes, not what tests arrange: every event
goes through `engine.events.failover_event_record`, every trace through the
trace buffer, every skip, failover and continuation through its metric.
"""

from providers_app.engine import metrics
from providers_app.models import FailoverEvent
from providers_app.reasons import Reason

# The metrics with a `reason` label.
REASON_METRICS = (metrics.FAILOVERS, metrics.CONTINUATIONS, metrics.SKIPS)


def check_reason(reason) -> None:
    if reason:
        assert reason in Reason.values, f"{reason!r} is not a Reason (providers_app/reasons.py)"


class CheckedEvents:
    """Stands in for FailoverEvent inside engine/events.py: each event the app
    writes has its reason checked, then is the real model instance."""

    def __call__(self, **fields) -> FailoverEvent:
        check_reason(fields.get("reason"))
        return FailoverEvent(**fields)

    def __getattr__(self, name):
        return getattr(FailoverEvent, name)


def check_trace_reasons(traces) -> None:
    """A trace's reason and each of its steps' (traces are bulk-created)."""
    for trace in traces:
        check_reason(trace.reason)
        for step in trace.steps:
            check_reason(step.get("reason"))


def bare_metric_reasons() -> set[str]:
    """`reason` label values of /metrics that are not Reason members."""
    found = set()
    for metric in REASON_METRICS:
        for sample in metric.collect()[0].samples:
            reason = sample.labels.get("reason")
            if sample.name.endswith("_total") and reason and reason not in Reason.values:
                found.add(f"{sample.name}{{reason={reason}}}")
    return found
