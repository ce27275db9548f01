"""The one vocabulary of reasons: why a provider failed, was skipped, changed
state, or what an operator did.

Every `reason` the app writes (FailoverEvent.reason, a result's ProviderReason,
the breaker's Denial, the `reason` label of /metrics, a trace's attempts, the
dashboard's legend) is a member of `Reason`; tests/test_reasons.py and the
suite-wide check in tests/conftest.py fail on a bare string. Values are stable
(stored in the history and used as metric labels): add members, never rename.

The failure categories are `adapters.errors.Category` (the adapters cannot
import Django); each is repeated here with its label, and a test checks that
the two never drift apart.
"""

from django.db import models


class Reason(models.TextChoices):
    # -- a failed call: adapters.errors.Category, one member each ----------------
    TRANSPORT = "transport", "Connection failed"
    TIMEOUT = "timeout", "Timed out"
    SERVER_ERROR = "server_error", "Server error"
    OVERLOADED = "overloaded", "Overloaded"
    RATE_LIMIT = "rate_limit", "Rate limited"
    QUOTA_EXHAUSTED = "quota_exhausted", "Quota exhausted"
    AUTH = "auth", "Authentication refused"
    PERMISSION = "permission", "Permission refused"
    NOT_FOUND = "not_found", "Model or endpoint not found"
    CONTEXT_LENGTH = "context_length", "Prompt too long"
    CONTENT_FILTER = "content_filter", "Content filtered"
    INVALID_REQUEST = "invalid_request", "Request refused as invalid"
    REQUEST_TOO_LARGE = "request_too_large", "Request too large"
    MALFORMED_RESPONSE = "malformed_response", "Malformed response"
    STREAM_MAX_DURATION = "stream_max_duration", "Stream reached its maximum duration"
    RESPONSE_FORMAT_UNMET = "response_format_unmet", "Answer missed the requested format"
    OUTPUT_TOO_SLOW = "output_too_slow", "Output too slow for the request's length"
    # A bug of ours while serving one provider (logged with its traceback).
    INTERNAL_ERROR = "internal_error", "Internal error"

    # -- a provider passed by without a call (FailoverEvent.SkipReason) ----------
    COOLDOWN = "cooldown", "Cooling down after a rate-limit hint"
    OPEN = "open", "Breaker open"
    FORCED_OPEN = "forced_open", "Breaker forced open by an operator"
    HALF_OPEN_BUSY = "half_open_busy", "Half-open, every probe slot taken"
    BREAKER_STORE_UNAVAILABLE = "breaker_store_unavailable", "Breaker state unreadable"
    CONTEXT_WINDOW = "context_window", "Prompt longer than the context window"
    DEADLINE = "deadline", "No time left before the request deadline"
    # The capability filter (engine/capabilities.py): "lacks_" + what is missing.
    LACKS_TOOLS = "lacks_tools", "Lacks tool calling"
    LACKS_STRUCTURED_OUTPUT = "lacks_structured_output", "Lacks structured output"
    LACKS_IMAGES = "lacks_images", "Lacks image input"
    LACKS_PREFILL = "lacks_prefill", "Cannot continue a partial answer"
    LACKS_PARALLEL_TOOL_CALLS = "lacks_parallel_tool_calls", "Cannot turn off parallel tool calls"
    LACKS_TOOLS_WITH_RESPONSE_FORMAT = (
        "lacks_tools_with_response_format",
        "Cannot combine tools and a response format",
    )
    LACKS_TOOL_NAME = "lacks_tool_name", "Cannot carry this tool name"
    LACKS_TOOL_CHOICE = "lacks_tool_choice", "Cannot force a tool choice"
    LACKS_IMAGE_URL = "lacks_image_url", "Cannot fetch an image URL"

    # -- why a breaker changed state ---------------------------------------------
    CONSECUTIVE_FAILURES = "consecutive_failures", "Consecutive failures"
    FAILURE_RATE = "failure_rate", "Failure rate over the threshold"
    SLOW_CALL_RATE = "slow_call_rate", "Slow-call rate over the threshold"
    SLOW_CALL = "slow_call", "Probe answered too slowly"
    OPEN_EXPIRED = "open_expired", "Open period over"
    FORCED_OPEN_EXPIRED = "forced_open_expired", "Forced-open period over"
    PROBE_SUCCEEDED = "probe_succeeded", "Probe succeeded"
    HEALTH_CHECK = "health_check", "Health check"

    # -- what an operator did (FailoverEvent.ManualReason) -----------------------
    RESET = "reset", "Breaker reset"
    FORCE_OPEN = "force_open", "Breaker forced open"
    FORCE_CLOSED = "force_closed", "Breaker forced closed"
    NEVER_TRIP = "never_trip", "Breaker set to never trip"
    PROVIDER_ENABLED = "provider_enabled", "Provider enabled for routing"
    PROVIDER_DISABLED = "provider_disabled", "Provider disabled for routing"
    HEALTH_CHECK_NOW = "health_check_now", "Health check run by hand"
    REORDERED = "reordered", "Providers reordered"
    CONFIG_CHANGED = "config_changed", "Configuration changed"

    # -- a continuation dialect a provider refused (adapters/continuation.py) -----
    TRAILING_ASSISTANT = "trailing_assistant", "Refused a trailing assistant message"
    VLLM = "vllm", "Refused vLLM's continue_final_message"
    PREFIX = "prefix", "Refused a prefix continuation"

    # -- a request's outcome -----------------------------------------------------
    ALL_FAILED = "all_failed", "Every provider failed"


def capability_reason(capability: str) -> Reason:
    """The skip reason of a provider lacking ``capability`` (a ValueError for an
    unknown one: a new capability needs its member above)."""
    return Reason(f"lacks_{capability}")


def reason_label(value: str) -> str:
    """What people read for a stored reason (the dashboard's legend, the admin);
    a value from before the vocabulary (or none) is shown as it is."""
    try:
        return Reason(value).label
    except ValueError:
        return value or "-"
