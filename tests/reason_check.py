"""The suite-wide check that no bare reason string is written (tests/conftest.py)."""

from providers_app.engine import metrics
from providers_app.reasons import Reason

# The metrics with a `reason` label.
REASON_METRICS = (metrics.FAILOVERS, metrics.CONTINUATIONS, metrics.SKIPS)

# Reasons written on purpose outside the vocabulary: the values releases before
# migration 0005 stored, which its own test writes to migrate them.
LEGACY = {"disable"}


def check_event_reason(sender, instance, **kwargs) -> None:
    reason = getattr(instance, "reason", None)
    if sender.__name__ == "FailoverEvent" and reason and reason not in LEGACY:
        assert reason in Reason.values, f"{reason!r} is not a Reason (providers_app/reasons.py)"


def bare_metric_reasons() -> set[str]:
    """`reason` label values of /metrics that are not Reason members."""
    found = set()
    for metric in REASON_METRICS:
        for sample in metric.collect()[0].samples:
            reason = sample.labels.get("reason")
            if sample.name.endswith("_total") and reason and reason not in Reason.values:
                found.add(f"{sample.name}{{reason={reason}}}")
    return found
