"""Database models: fields, Meta, __str__ and clean() only; logic lives in services."""

import re
import uuid
from decimal import Decimal
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import (
    MaxValueValidator,
    MinValueValidator,
    RegexValidator,
    validate_email,
)
from django.db import models

from .conf import get_setting
from .outbound import (
    base_url_refusal,
    extra_credential_names,
    key_binding_refusal,
    key_env_refusal,
    validate_base_url_policy,
    validate_key_env,
)
from .querysets import ProviderQuerySet
from .reasons import Reason

ENV_VAR_NAME = RegexValidator(
    r"^[A-Za-z_][A-Za-z0-9_]*$",
    "Enter the NAME of an environment variable (letters, digits, underscores), not the key itself.",
)


def validate_http_url(value: str) -> None:
    """An http(s) URL with a host. Bare hosts such as http://ollama:11434 are fine:
    self-hosted models often live behind a service name without a domain."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018  (raises on a malformed port)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or " " in value:
        raise ValidationError("Enter an http:// or https:// URL.", code="invalid_url")


# Control characters (and the Unicode line separators): a name or header value
# holding one cannot travel in an HTTP header, a log line or a CSV cell.
CONTROL_CHARACTERS = r"[\x00-\x1f\x7f-\x9f\u2028\u2029]"
NO_CONTROL_CHARACTERS = RegexValidator(
    CONTROL_CHARACTERS,
    "Control characters are not allowed (newlines, tabs, ...).",
    code="control_characters",
    inverse_match=True,
)

PERCENT = [MinValueValidator(1), MaxValueValidator(100)]

# Kinds whose real API refuses calls without a key.
KINDS_NEEDING_KEY = frozenset({"openai", "azure_openai", "anthropic", "gemini"})


class Continuation(models.TextChoices):
    """Continuation dialects (the same values as adapters/continuation.py)."""

    NONE = "none", "None: starts a new answer (OpenAI, Azure)"
    TRAILING_ASSISTANT = (
        "trailing_assistant",
        ("Trailing assistant message (Anthropic, Gemini, Groq, OpenRouter, llama.cpp)"),
    )
    VLLM = "vllm", "vLLM: continue_final_message"
    PREFIX = "prefix", "Mistral / DeepSeek: prefix: true"


# Which dialects each kind's wire format can carry (adapters/continuation.py).
CONTINUATIONS_BY_KIND = {
    "openai": ("none",),
    "azure_openai": ("none",),
    "anthropic": ("none", "trailing_assistant"),
    "gemini": ("none", "trailing_assistant"),
    "ollama": ("none", "trailing_assistant"),
}


class Provider(models.Model):
    """An upstream LLM endpoint. Where it is tried, and in which order, is each
    route's business (Route, RouteMember): a provider has no order of its own."""

    class Kind(models.TextChoices):
        OPENAI = "openai", "OpenAI"
        AZURE_OPENAI = "azure_openai", "Azure OpenAI"
        ANTHROPIC = "anthropic", "Anthropic"
        GEMINI = "gemini", "Google Gemini"
        OLLAMA = "ollama", "Ollama"
        OPENAI_COMPATIBLE = "openai_compatible", "OpenAI-compatible (vLLM, Groq, Mistral, ...)"
        SIMULATED = "simulated", "Simulated (local demo upstream)"

    name = models.CharField(
        "name",
        max_length=100,
        unique=True,
        validators=[NO_CONTROL_CHARACTERS],
        help_text="A unique, human-readable name.",
    )
    kind = models.CharField(
        "kind", max_length=32, choices=Kind.choices, help_text="The wire format spoken."
    )
    base_url = models.CharField(
        "base URL",
        max_length=500,
        validators=[validate_http_url, validate_base_url_policy],
        help_text="The API root, e.g. https://api.openai.com/v1. No credentials or query "
        "string; FALLBACK_UPSTREAM_HOSTS may limit the hosts.",
    )
    model = models.CharField("model", max_length=200, help_text="The upstream model or deployment.")
    api_key_env = models.CharField(
        "API key variable",
        max_length=100,
        blank=True,
        validators=[ENV_VAR_NAME, validate_key_env],
        help_text="The name of the environment variable holding the key, such as "
        "OPENAI_API_KEY. The key itself is never stored. Server secrets (DJANGO_*, "
        "DATABASE_URL, AWS_*, ...) are refused: see FALLBACK_KEY_ENV_ALLOW.",
    )
    enabled = models.BooleanField("enabled", default=True)
    timeout_s = models.FloatField(
        "attempt timeout (s)",
        default=30.0,
        validators=[MinValueValidator(0.1), MaxValueValidator(600)],
        help_text="Wall-clock limit of one attempt; the request deadline can shorten it.",
    )
    max_attempts = models.PositiveSmallIntegerField(
        "attempts per request",
        default=2,
        validators=[MinValueValidator(1), MaxValueValidator(10)],
        help_text="Attempts on this provider within one request, the first included.",
    )
    context_window = models.PositiveIntegerField(
        "context window (tokens)",
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Used to fail over a too-long prompt only to a provider with a larger window.",
    )
    extra = models.JSONField(
        "extra",
        default=dict,
        blank=True,
        help_text='Optional {"headers": {...}, "params": {...}}; Azure needs '
        '{"params": {"api-version": "2024-10-21"}}. Never put keys here.',
    )
    # Breaker overrides: empty means the FALLBACK_BREAKER_* default.
    failure_threshold = models.PositiveSmallIntegerField(
        "consecutive failures to open",
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(1000)],
    )
    failure_rate_threshold = models.PositiveSmallIntegerField(
        "failure rate to open (%)", null=True, blank=True, validators=PERCENT
    )
    slow_call_rate_threshold = models.PositiveSmallIntegerField(
        "slow-call rate to open (%)", null=True, blank=True, validators=PERCENT
    )
    slow_call_threshold_s = models.FloatField(
        "slow call (s)",
        null=True,
        blank=True,
        validators=[MinValueValidator(0.001)],
        help_text="A success slower than this counts as slow.",
    )
    minimum_calls = models.PositiveSmallIntegerField(
        "minimum calls in window",
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(10000)],
    )
    half_open_probes = models.PositiveSmallIntegerField(
        "half-open probes",
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(10)],
    )
    open_base_s = models.FloatField(
        "base open time (s)", null=True, blank=True, validators=[MinValueValidator(0.001)]
    )
    open_max_s = models.FloatField(
        "max open time (s)", null=True, blank=True, validators=[MinValueValidator(0.001)]
    )
    # Capabilities: empty means the default for the kind and model
    # (adapters/capabilities.py, listed in docs/clients.md §5).
    supports_tools = models.BooleanField(
        "tools",
        null=True,
        blank=True,
        help_text="Function tools and tool results. Empty: the default for the kind and model.",
    )
    supports_structured_output = models.BooleanField(
        "structured output",
        null=True,
        blank=True,
        help_text="response_format json_object and json_schema. Empty: the default for the "
        "kind and model.",
    )
    supports_images = models.BooleanField(
        "images",
        null=True,
        blank=True,
        help_text="image_url parts in user messages. Empty: the default for the kind and model.",
    )
    continuation = models.CharField(
        "continues a partial answer",
        max_length=32,
        blank=True,
        default="",
        choices=[("", "Default for the kind, base URL and model"), *Continuation.choices],
        help_text="How this server continues a cut answer (the mid-stream rescue): "
        'docs/vendors.md, "Continuing a partial answer". Set to none automatically '
        "when the provider refuses a continuation (an event says so).",
    )
    # Prices in US dollars per million tokens (docs/usage.md). Empty: not priced,
    # so the usage is counted and its cost is 0.
    price_input_per_mtok = models.DecimalField(
        "input price ($ per million tokens)",
        max_digits=12,
        decimal_places=6,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal(0))],
        help_text="What the vendor bills per million prompt tokens. Empty: not priced.",
    )
    price_cached_input_per_mtok = models.DecimalField(
        "cached input price ($ per million tokens)",
        max_digits=12,
        decimal_places=6,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal(0))],
        help_text="Per million prompt tokens read from the vendor's cache, where it bills "
        "them apart. Empty: cached tokens cost the input price.",
    )
    price_output_per_mtok = models.DecimalField(
        "output price ($ per million tokens)",
        max_digits=12,
        decimal_places=6,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal(0))],
        help_text="Per million generated tokens (reasoning tokens included). Empty: not priced.",
    )
    created_at = models.DateTimeField("created", auto_now_add=True)
    updated_at = models.DateTimeField("updated", auto_now=True)

    objects = ProviderQuerySet.as_manager()

    class Meta:
        ordering = ["id"]  # as added; the order traffic follows is each route's
        # Who may do what: docs/operations.md "Authorisation". Reordering is a
        # route's permission (Route: reorder_route), on whichever screen it happens.
        permissions = [
            (
                "operate_provider",
                "Can operate providers (health check, reset, force open or closed, "
                "never trip, enable, disable)",
            ),
            ("use_chat", "Can use the chatbot page (spends provider credit)"),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}
        errors.update(_extra_errors(self.extra))
        if self.kind in KINDS_NEEDING_KEY and not self.api_key_env:
            errors.setdefault("api_key_env", []).append(
                f"A {self.get_kind_display()} provider needs the name of its API key variable."
            )
        if self.api_key_env and not key_env_refusal(self.api_key_env):
            binding = key_binding_refusal(self.api_key_env, self.base_url or "")
            if binding:
                errors.setdefault("api_key_env", []).append(binding)
        if self.kind == self.Kind.AZURE_OPENAI and not _azure_has_api_version(self):
            errors.setdefault("extra", []).append(
                'Azure OpenAI needs {"params": {"api-version": "..."}}, unless the base URL '
                "is the v1 surface ending in /openai/v1."
            )
        allowed = CONTINUATIONS_BY_KIND.get(self.kind)
        if self.continuation and allowed is not None and self.continuation not in allowed:
            errors.setdefault("continuation", []).append(
                f"A {self.get_kind_display()} provider continues only as: "
                + ", ".join(allowed)
                + "."
            )
        base = self.open_base_s or get_setting("BREAKER_OPEN_BASE_S")
        top = self.open_max_s or get_setting("BREAKER_OPEN_MAX_S")
        if base > top:
            errors.setdefault("open_base_s", []).append(
                f"The base open time ({base:g} s) must not exceed the max open time ({top:g} s)."
            )
        deadline = get_setting("DEADLINE_S")
        if self.timeout_s is not None and self.timeout_s > deadline:
            errors.setdefault("timeout_s", []).append(
                f"The attempt timeout must not exceed the request deadline ({deadline:g} s)."
            )
        if errors:
            raise ValidationError(errors)


def _azure_has_api_version(provider: Provider) -> bool:
    params = provider.extra.get("params", {}) if isinstance(provider.extra, dict) else {}
    return bool(params.get("api-version")) or provider.base_url.rstrip("/").endswith("/openai/v1")


def _extra_errors(extra: object) -> dict[str, list[str]]:
    """Check the shape of `Provider.extra`, refusing credentials in headers."""
    if not isinstance(extra, dict):
        return {"extra": ["Enter a JSON object."]}
    problems = []
    unknown = set(extra) - {"headers", "params"}
    if unknown:
        problems.append(f"Unknown keys: {', '.join(sorted(unknown))}. Use headers and params.")
    for section in ("headers", "params"):
        value = extra.get(section, {})
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            problems.append(f'"{section}" must map strings to strings.')
    headers = extra.get("headers")
    if isinstance(headers, dict) and any(
        re.search(CONTROL_CHARACTERS, f"{name}{value}") for name, value in headers.items()
    ):
        # A CR/LF would end the header and start another (header injection).
        problems.append("Header names and values may not hold control characters (CR, LF, ...).")
    for section, names in extra_credential_names(extra).items():
        what = "Header" if section == "headers" else "Parameter"
        problems.append(
            f"{what} {', '.join(names)} carries a credential; name its environment "
            "variable in api_key_env instead."
        )
    return {"extra": problems} if problems else {}


class BreakerState(models.Model):
    """The shared circuit breaker of one provider. Written only by engine.breaker.

    Every provider has exactly one: it is created with the provider (signals),
    so readers never need a "no row means closed" fallback."""

    class State(models.TextChoices):
        CLOSED = "closed", "Closed"
        OPEN = "open", "Open"
        HALF_OPEN = "half_open", "Half-open"
        FORCED_OPEN = "forced_open", "Forced open"
        # The operator's "never trip": every call allowed, nothing evaluated, until
        # reset. Not to be confused with a disabled provider (Provider.enabled).
        NEVER_TRIP = "never_trip", "Never trips"

    provider = models.OneToOneField(
        Provider, on_delete=models.CASCADE, primary_key=True, related_name="breaker"
    )
    state = models.CharField("state", max_length=16, choices=State.choices, default=State.CLOSED)
    generation = models.BigIntegerField(
        "generation", default=0, help_text="Bumped on every transition; guards each update."
    )
    consecutive_failures = models.PositiveIntegerField("consecutive failures", default=0)
    opened_at = models.DateTimeField("opened at", null=True, blank=True)
    open_until = models.DateTimeField(
        "open until",
        null=True,
        blank=True,
        help_text="OPEN: when a probe may go through. FORCED_OPEN: the expiry, if any.",
    )
    open_cycles = models.PositiveIntegerField(
        "open cycles", default=0, help_text="Consecutive OPEN cycles; the open time grows with it."
    )
    half_open_started_at = models.DateTimeField("half-open since", null=True, blank=True)
    probes_permitted = models.PositiveSmallIntegerField("probes permitted", default=1)
    probes_issued = models.PositiveSmallIntegerField("probes issued", default=0)
    probes_succeeded = models.PositiveSmallIntegerField("probes succeeded", default=0)
    cooldown_until = models.DateTimeField(
        "cooling down until",
        null=True,
        blank=True,
        help_text="Set by a rate-limit hint; every process skips the provider until then.",
    )
    window_reset_at = models.DateTimeField(
        "window reset at",
        null=True,
        blank=True,
        help_text="Calls before this do not count towards the failure rate (set on close).",
    )
    last_error = models.CharField("last error", max_length=500, blank=True)
    updated_at = models.DateTimeField("updated", auto_now=True)

    class Meta:
        verbose_name = "breaker state"

    def __str__(self) -> str:
        return f"{self.provider_id}: {self.get_state_display()}"


class ProbeLease(models.Model):
    """A half-open probe slot, held by one in-flight request until it reports or expires."""

    class Outcome(models.TextChoices):
        SUCCESS = "success", "Success"
        FAILURE = "failure", "Failure"
        RELEASED = "released", "Released unused"

    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="probe_leases")
    generation = models.BigIntegerField("breaker generation")
    slot = models.PositiveSmallIntegerField("slot")
    lease_id = models.UUIDField("lease", default=uuid.uuid4, unique=True)
    issued_at = models.DateTimeField("issued at")
    expires_at = models.DateTimeField("expires at")
    outcome = models.CharField("outcome", max_length=16, choices=Outcome.choices, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "generation", "slot"], name="probe_lease_slot_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"probe {self.provider_id}/{self.generation}/{self.slot}"


class CallCounters(models.Model):
    """The counters one provider's calls add up to, per second or per hour."""

    first_attempts = models.PositiveIntegerField("first attempts", default=0)
    retries = models.PositiveIntegerField("retries", default=0)
    successes = models.PositiveIntegerField("successes", default=0)
    failures = models.PositiveIntegerField("failures", default=0)
    slow_calls = models.PositiveIntegerField("slow calls", default=0)
    rate_limited = models.PositiveIntegerField("rate limited", default=0)
    not_permitted = models.PositiveIntegerField("not permitted", default=0)
    budget_refusals = models.PositiveIntegerField("retry-budget refusals", default=0)
    # Requests, counted on the provider that answered them (selectors.call_stats
    # defines them): at its first try, after retries on it, or after an earlier
    # provider of the route failed or was skipped.
    answered_first_try = models.PositiveIntegerField("answered at the first try", default=0)
    answered_after_retries = models.PositiveIntegerField("answered after retries", default=0)
    answered_by_fallback = models.PositiveIntegerField("answered by a fallback", default=0)
    # Streams this provider cut after output that no other provider could finish.
    interrupted = models.PositiveIntegerField("answers interrupted", default=0)
    latency_ms_sum = models.FloatField(
        "time to first output, sum (ms)",
        default=0,
        help_text="Answered calls' time from sending the attempt to the first output "
        "(the whole answer when not streamed), added up.",
    )
    total_ms_sum = models.FloatField(
        "total time, sum (ms)",
        default=0,
        help_text="Answered calls' time from sending the attempt to the end of the answer "
        "(the last chunk of a stream), added up.",
    )

    class Meta:
        abstract = True


class CallBucket(CallCounters):
    """Call counters of one provider for one second, sharded by process to avoid a hot row."""

    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="call_buckets")
    bucket_start = models.DateTimeField("bucket start")
    shard = models.PositiveSmallIntegerField("shard", default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "bucket_start", "shard"], name="call_bucket_unique"
            ),
        ]
        indexes = [models.Index(fields=["provider", "bucket_start"])]

    def __str__(self) -> str:
        return f"{self.provider_id} @ {self.bucket_start:%H:%M:%S}"


class FailureBucket(models.Model):
    """Failed attempts of one provider for one second, by reason (the attempt's
    category), sharded by process like `CallBucket`. Only failures write here, so
    a healthy provider adds no rows; kept as long as the rollups (7 days)."""

    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="failure_buckets")
    bucket_start = models.DateTimeField("bucket start")
    reason = models.CharField("reason", max_length=64, choices=Reason.choices)
    shard = models.PositiveSmallIntegerField("shard", default=0)
    failures = models.PositiveIntegerField("failed attempts", default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "bucket_start", "reason", "shard"],
                name="failure_bucket_unique",
            ),
        ]
        indexes = [models.Index(fields=["bucket_start"])]

    def __str__(self) -> str:
        return f"{self.provider_id} {self.reason} @ {self.bucket_start:%H:%M:%S}"


class FailoverEvent(models.Model):
    """One failover, breaker transition, all-failed outcome or manual change."""

    class Kind(models.TextChoices):
        FAILOVER = "failover", "Failover"
        BREAKER_OPENED = "breaker_opened", "Breaker opened"
        BREAKER_HALF_OPEN = "breaker_half_open", "Breaker half-open"
        BREAKER_CLOSED = "breaker_closed", "Breaker closed"
        ALL_FAILED = "all_failed", "All providers failed"
        HEALTH_FAILED = "health_failed", "Health check failed"
        HEALTH_RECOVERED = "health_recovered", "Health check recovered"
        MANUAL = "manual", "Manual change"
        # A committed stream failed and another provider finished the answer.
        CONTINUATION = "continuation", "Answer continued on another provider"
        # A committed stream was cut (or stalled) and nobody continued the answer.
        STREAM_INTERRUPTED = "stream_interrupted", "Stream interrupted, not continued"
        # A provider refused the prefill of a continuation (a 400 to the partial answer).
        PREFILL_REFUSED = "prefill_refused", "Continuation refused by a provider"
        # A provider refused a continuation (or started over): its dialect was set
        # to none (engine/continuation.py); an admin may switch it back.
        CONTINUATION_OFF = "continuation_off", "Continuation switched off after a refusal"

    # Subsets of the one vocabulary (providers_app/reasons.py), values and labels from there.
    class SkipReason(models.TextChoices):
        """Why a request passed a provider by without calling it (results, metrics,
        the API's error body and `failover` events' reasons)."""

        COOLDOWN = Reason.COOLDOWN, Reason.COOLDOWN.label
        OPEN = Reason.OPEN, Reason.OPEN.label
        FORCED_OPEN = Reason.FORCED_OPEN, Reason.FORCED_OPEN.label
        HALF_OPEN_BUSY = Reason.HALF_OPEN_BUSY, Reason.HALF_OPEN_BUSY.label
        BREAKER_STORE_UNAVAILABLE = (
            Reason.BREAKER_STORE_UNAVAILABLE,
            Reason.BREAKER_STORE_UNAVAILABLE.label,
        )
        CONTEXT_WINDOW = Reason.CONTEXT_WINDOW, Reason.CONTEXT_WINDOW.label
        DEADLINE = Reason.DEADLINE, Reason.DEADLINE.label

    class ManualReason(models.TextChoices):
        """The reason of a `manual` event: what the operator did."""

        RESET = Reason.RESET, Reason.RESET.label
        FORCE_OPEN = Reason.FORCE_OPEN, Reason.FORCE_OPEN.label
        FORCE_CLOSED = Reason.FORCE_CLOSED, Reason.FORCE_CLOSED.label
        NEVER_TRIP = Reason.NEVER_TRIP, Reason.NEVER_TRIP.label
        PROVIDER_ENABLED = Reason.PROVIDER_ENABLED, Reason.PROVIDER_ENABLED.label
        PROVIDER_DISABLED = Reason.PROVIDER_DISABLED, Reason.PROVIDER_DISABLED.label
        HEALTH_CHECK_NOW = Reason.HEALTH_CHECK_NOW, Reason.HEALTH_CHECK_NOW.label
        REORDERED = Reason.REORDERED, Reason.REORDERED.label
        CONFIG_CHANGED = Reason.CONFIG_CHANGED, Reason.CONFIG_CHANGED.label

    created_at = models.DateTimeField("time", auto_now_add=True, db_index=True)
    request_id = models.CharField("request id", max_length=64, blank=True, db_index=True)
    kind = models.CharField("kind", max_length=32, choices=Kind.choices)
    provider = models.ForeignKey(
        Provider,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="events_from",
        verbose_name="from provider",
    )
    to_provider = models.ForeignKey(
        Provider,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="events_to",
        verbose_name="to provider",
    )
    reason = models.CharField(
        "reason", max_length=64, blank=True, db_index=True, choices=Reason.choices
    )
    # The route's name as the request resolved it (a name, not a key: the history
    # outlives a renamed or deleted route). Empty for events outside a request.
    route = models.CharField("route", max_length=100, blank=True, db_index=True)
    status_code = models.PositiveSmallIntegerField("status", null=True, blank=True)
    detail = models.CharField("detail", max_length=500, blank=True)
    attempt = models.PositiveSmallIntegerField("attempt", null=True, blank=True)
    latency_ms = models.FloatField("latency (ms)", null=True, blank=True)
    # Interruptions (stream_interrupted, continuation, prefill_refused): how much of
    # the answer the client had when the stream was cut.
    delivered_chars = models.PositiveIntegerField("delivered (characters)", null=True, blank=True)
    count = models.PositiveIntegerField(
        "count", default=1, help_text="How many occurrences this row stands for (coalesced)."
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        verbose_name="acting user",
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["kind", "created_at"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.provider or ''} {self.reason}".strip()


class HealthCheckResult(models.Model):
    """The outcome of one active health check; never mixed into traffic counters."""

    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="health_results")
    checked_at = models.DateTimeField("checked at", auto_now_add=True, db_index=True)
    ok = models.BooleanField("ok")
    latency_ms = models.FloatField("latency (ms)", null=True, blank=True)
    status_code = models.PositiveSmallIntegerField("status", null=True, blank=True)
    error_class = models.CharField("error class", max_length=64, blank=True)
    detail = models.CharField("detail", max_length=500, blank=True)

    class Meta:
        ordering = ["-checked_at", "-id"]

    def __str__(self) -> str:
        return f"{self.provider_id} {'ok' if self.ok else self.error_class}"


class HealthCheckSchedule(models.Model):
    """When a provider is next due for a health check, and who holds the check lease."""

    provider = models.OneToOneField(
        Provider, on_delete=models.CASCADE, primary_key=True, related_name="health_schedule"
    )
    next_check_at = models.DateTimeField("next check at", null=True, blank=True)
    lease_until = models.DateTimeField("leased until", null=True, blank=True)
    consecutive_failures = models.PositiveIntegerField("consecutive failed checks", default=0)

    def __str__(self) -> str:
        return f"health schedule of {self.provider_id}"


def budget_fields(owner: str) -> tuple[models.Field, models.Field]:
    """The two budgets a client key and a route each carry (engine/budgets.py):
    tokens per UTC minute and US dollars per calendar month; empty: no limit."""
    tokens = models.PositiveIntegerField(
        "tokens per minute",
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text=f"Budget: {owner} prompt and answer tokens per UTC minute, across "
        "every process (docs/usage.md, Budgets). Over it: 429. Empty: no limit.",
    )
    spend = models.DecimalField(
        "monthly spend limit ($)",
        max_digits=12,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal(0))],
        help_text=f"Budget: {owner} US dollars per calendar month (UTC) at the "
        "providers' prices. Over it: 429 until the month ends. Empty: no limit.",
    )
    return tokens, spend


class ClientKey(models.Model):
    """An API key for callers of the chat API, stored as a SHA-256 digest and shown once."""

    name = models.CharField("name", max_length=100, unique=True)
    prefix = models.CharField(
        "prefix", max_length=16, help_text="The first characters, to recognise a key."
    )
    key_hash = models.CharField("key digest", max_length=64, unique=True)
    routes = models.ManyToManyField(
        "Route",
        blank=True,
        related_name="client_keys",
        verbose_name="routes",
        help_text="The routes this key may use as `model`. Empty: every route.",
    )
    # Per-key fairness (providers_app/limits): empty means the FALLBACK_KEY_* default.
    max_concurrent_requests = models.PositiveIntegerField(
        "concurrent requests",
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Requests this key may have in flight at once (streams until they end). "
        "Empty: FALLBACK_KEY_CONCURRENT_REQUESTS.",
    )
    requests_per_minute = models.PositiveIntegerField(
        "requests per minute",
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Requests this key may start per minute. "
        "Empty: FALLBACK_KEY_REQUESTS_PER_MINUTE.",
    )
    # Set whenever routes are chosen: a key stays limited (to what is left, maybe
    # nothing) when its routes are deleted, rather than falling open to all.
    limited_to_routes = models.BooleanField(
        "limited to its routes",
        default=False,
        help_text="Only the routes listed. Deleting them leaves the key refused everywhere.",
    )
    created_at = models.DateTimeField("created", auto_now_add=True)
    last_used_at = models.DateTimeField("last used", null=True, blank=True)
    tokens_per_minute, monthly_spend_limit_usd = budget_fields("this key's")
    revoked_at = models.DateTimeField("revoked", null=True, blank=True)

    class Meta:
        ordering = ["name"]
        permissions = [("revoke_clientkey", "Can revoke client keys")]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class CallRollup(CallCounters):
    """Call counters of one provider for one five-minute period, rolled up from
    CallBucket for charts.

    `latency_histogram` (time to first output) and `total_histogram` (total
    time) map a bucket's upper bound in milliseconds ("250", ..., "inf") to how
    many answered calls fell in it, so percentiles over several periods come
    from adding histograms, never from averaging averages.
    """

    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="call_rollups")
    period_start = models.DateTimeField(
        "period start", help_text="The start of the five-minute period (UTC)."
    )
    latency_histogram = models.JSONField(
        "time-to-first-output histogram",
        default=dict,
        blank=True,
        help_text="Answered calls per bucket of time to first output: upper bound in ms "
        "(or inf) to count.",
    )
    total_histogram = models.JSONField(
        "total-time histogram",
        default=dict,
        blank=True,
        help_text="Answered calls per bucket of total time: upper bound in ms (or inf) to count.",
    )
    final = models.BooleanField(
        "final",
        default=False,
        help_text="The period is over and rolled up for good; its one-second buckets are pruned.",
    )
    updated_at = models.DateTimeField("updated", auto_now=True)

    class Meta:
        ordering = ["-period_start", "provider_id"]
        constraints = [
            models.UniqueConstraint(fields=["provider", "period_start"], name="call_rollup_unique"),
        ]
        indexes = [models.Index(fields=["period_start"], name="call_rollup_period_idx")]

    def __str__(self) -> str:
        return f"{self.provider_id} @ {self.period_start:%Y-%m-%d %H:%M}"


class RoutingVersion(models.Model):
    """One row whose `version` moves whenever anything a routing snapshot holds changes.

    Database triggers (migration `routing_version`) bump it in the same
    transaction as every insert, update or delete of a Provider or BreakerState
    row, whatever wrote it (admin, reorder, bulk update, breaker transition), so
    a process may keep its snapshot for as long as this one-row read says the
    version it was read at is still current (see `engine/routing.py`).
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    version = models.BigIntegerField("version", default=0)

    def __str__(self) -> str:
        return f"routing version {self.version}"


class Route(models.Model):
    """A name a client sends as `model`, with the providers to try in order.

    A provider may sit in several routes; its breaker, cooldown and health stay
    one per provider, shared by every route. A route's order lives only in its
    members' `order`; the Providers page and the route's page both edit it. With
    no route at all, every name follows the providers in the order they were
    added (see engine/routing.py), and the first reorder creates the default route.
    """

    name = models.CharField(
        "name",
        max_length=100,
        unique=True,
        validators=[
            RegexValidator(
                r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$",
                "Letters, digits and . _ : / - (what clients send as model).",
            )
        ],
        help_text="What a client sends as `model`, e.g. chat or chat-large.",
    )
    is_default = models.BooleanField(
        "default route",
        default=False,
        help_text="Serves every `model` that names no route. At most one route.",
    )
    deadline_s = models.FloatField(
        "deadline (s)",
        null=True,
        blank=True,
        validators=[MinValueValidator(0.1), MaxValueValidator(600)],
        help_text="The request deadline on this route. Empty: FALLBACK_DEADLINE_S.",
    )
    failover_on_content_filter = models.BooleanField(
        "fail over on content filter",
        null=True,
        blank=True,
        help_text="Try the next provider when one filters the content. "
        "Empty: FALLBACK_FAILOVER_ON_CONTENT_FILTER.",
    )
    hold_back = models.BooleanField(
        "hold back streams",
        default=False,
        help_text="Streams on this route send the answer only once it is complete, so a "
        "failure restarts cleanly on the next provider (see docs/clients.md, Hold-back).",
    )
    auto_hold_back = models.BooleanField(
        "hold back when nobody can continue",
        default=False,
        help_text="Hold back a provider's stream only when no provider behind it on this "
        "route can continue a cut answer; stream live otherwise (docs/engine.md, "
        "Automatic hold-back: the first token then comes at the end of the answer).",
    )
    tokens_per_minute, monthly_spend_limit_usd = budget_fields("the route's")
    providers = models.ManyToManyField(
        Provider, through="RouteMember", related_name="routes", verbose_name="providers"
    )
    created_at = models.DateTimeField("created", auto_now_add=True)
    updated_at = models.DateTimeField("updated", auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"],
                condition=models.Q(is_default=True),
                name="route_one_default",
            ),
        ]
        permissions = [("reorder_route", "Can reorder the providers of a route")]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        deadline = self.deadline_s
        if self.is_default:
            others = Route.objects.filter(is_default=True).exclude(pk=self.pk)
            if others.exists():
                raise ValidationError(
                    {"is_default": f"{others.first().name} is already the default route."}
                )
        if deadline is not None and deadline < get_setting("MIN_ATTEMPT_S"):
            raise ValidationError(
                {"deadline_s": "The deadline must leave time for at least one attempt."}
            )


class RouteMember(models.Model):
    """One provider's place in one route (lower `order` is tried first)."""

    route = models.ForeignKey(Route, on_delete=models.CASCADE, related_name="members")
    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="route_members")
    order = models.PositiveIntegerField("order", default=0, db_index=True)

    class Meta:
        ordering = ["order", "id"]
        verbose_name = "route member"
        constraints = [
            models.UniqueConstraint(fields=["route", "provider"], name="route_member_unique"),
        ]

    def __str__(self) -> str:
        # Not the raw `order` number: only the members' relative order counts, and
        # the admin shows places counted from 1 (this text is the inline's drag handle).
        return "drag to reorder"


class RequestTrace(models.Model):
    """One request's walk down its route, attempt by attempt (engine/tracing.py).

    Every request that failed, retried, failed over or was interrupted is kept;
    answers at the first try are kept at FALLBACK_TRACE_SAMPLE_RATE. Names, not
    keys (as FailoverEvent.route): the history outlives a renamed provider.
    """

    class Outcome(models.TextChoices):
        ANSWERED = "answered", "Answered"
        FAILED = "failed", "Failed"
        INTERRUPTED = "interrupted", "Interrupted mid-stream"
        ABANDONED = "abandoned", "Client went away"

    created_at = models.DateTimeField("time", db_index=True)
    request_id = models.CharField("request id", max_length=64, db_index=True)
    route = models.CharField("route", max_length=100, blank=True)
    streamed = models.BooleanField("streamed", default=False)
    outcome = models.CharField("outcome", max_length=16, choices=Outcome.choices)
    provider = models.CharField("answered by", max_length=100, blank=True)
    reason = models.CharField("reason", max_length=64, blank=True, choices=Reason.choices)
    attempt_count = models.PositiveSmallIntegerField("attempts", default=0)
    failovers = models.PositiveSmallIntegerField("failovers", default=0)
    duration_ms = models.FloatField("duration (ms)", null=True, blank=True)
    sampled = models.BooleanField(
        "sampled",
        default=False,
        help_text="Kept by sampling (an answer at the first try); otherwise always kept.",
    )
    # One dict per step: provider, started_ms (since the request began),
    # duration_ms, ttft_ms, outcome, reason, status, action, why.
    steps = models.JSONField("attempts", default=list)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["outcome", "created_at"])]
        verbose_name = "request trace"

    def __str__(self) -> str:
        return f"{self.request_id} {self.get_outcome_display()}"


class AlertChannel(models.Model):
    """Where alerts go (services/alerts.py): a webhook (a Slack-compatible JSON
    body) or email. A webhook's secret is read from the environment variable
    named here, at send time; it is never stored."""

    class Kind(models.TextChoices):
        WEBHOOK = "webhook", "Webhook (Slack-compatible JSON)"
        EMAIL = "email", "Email"

    name = models.CharField("name", max_length=100, unique=True)
    kind = models.CharField("kind", max_length=16, choices=Kind.choices)
    enabled = models.BooleanField("enabled", default=True)
    url = models.URLField(
        "webhook URL",
        max_length=500,
        blank=True,
        help_text=(
            "Follows the providers' outbound policy: a host allowed by FALLBACK_UPSTREAM_HOSTS, "
            "no user:password@, no query string. A secret that belongs in the path (Slack) "
            "is written {secret} and comes from the variable below."
        ),
    )
    secret_env = models.CharField(
        "secret variable",
        max_length=100,
        blank=True,
        help_text=(
            "Name of the environment variable holding the webhook's secret: it replaces "
            "{secret} in the URL, or else is sent as 'Authorization: Bearer'."
        ),
    )
    emails = models.CharField(
        "email addresses", max_length=500, blank=True, help_text="Comma-separated."
    )
    on_breaker = models.BooleanField("breaker opened or closed", default=True)
    on_route_down = models.BooleanField("every provider of a route down", default=True)
    on_failover_rate = models.BooleanField("failover rate over the threshold", default=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "alert channel"

    def __str__(self) -> str:
        return self.name

    def recipients(self) -> list[str]:
        return [a.strip() for a in self.emails.split(",") if a.strip()]

    def clean(self) -> None:
        errors = {}
        if self.kind == self.Kind.WEBHOOK:
            if not self.url:
                errors["url"] = "A webhook channel needs its URL."
            else:
                problem = base_url_refusal(self.url.replace("{secret}", "secret"))
                if problem:
                    errors["url"] = problem.replace("base URL", "webhook URL")
            if "{secret}" in self.url and not self.secret_env:
                errors["secret_env"] = "The URL has {secret}: name its variable."  # noqa: S105
            if self.secret_env:
                problem = key_env_refusal(self.secret_env)
                if problem:
                    errors["secret_env"] = problem
        if self.kind == self.Kind.EMAIL:
            if not self.recipients():
                errors["emails"] = "An email channel needs at least one address."
            for address in self.recipients():
                try:
                    validate_email(address)
                except ValidationError:
                    errors["emails"] = f"{address!r} is not an email address."
        if errors:
            raise ValidationError(errors)


class AlertIncident(models.Model):
    """One incident, alerted once when it opens and once when it resolves.

    At most one open row per (kind, subject) (a partial unique constraint): the
    thousandth failing request finds the incident open and sends nothing."""

    class Kind(models.TextChoices):
        BREAKER_OPEN = "breaker_open", "Breaker open"
        ROUTE_DOWN = "route_down", "Every provider of a route down"
        FAILOVER_RATE = "failover_rate", "Failover rate over the threshold"

    kind = models.CharField("kind", max_length=32, choices=Kind.choices)
    subject = models.CharField("provider or route", max_length=100, blank=True)
    detail = models.CharField("detail", max_length=500, blank=True)
    opened_at = models.DateTimeField("opened", db_index=True)
    resolved_at = models.DateTimeField("resolved", null=True, blank=True)
    open_sent = models.BooleanField("open alert sent", default=False)
    resolve_sent = models.BooleanField("resolve alert sent", default=False)

    class Meta:
        ordering = ["-opened_at", "-id"]
        verbose_name = "alert incident"
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "subject"],
                condition=models.Q(resolved_at__isnull=True),
                name="alert_incident_one_open",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.subject}".strip()


class LimitLease(models.Model):
    """One slot of a concurrency limit, held until released or until it expires
    (so a process that dies holding it frees it by itself). providers_app/limits."""

    scope = models.CharField("scope", max_length=100)
    kind = models.CharField("limit", max_length=40)
    token = models.CharField("holder", max_length=32, db_index=True)
    expires_at = models.FloatField("expires (epoch seconds)")

    class Meta:
        indexes = [models.Index(fields=["scope", "kind", "expires_at"])]

    def __str__(self) -> str:
        return f"{self.scope} {self.kind} {self.token}"


class LimitCounter(models.Model):
    """What a scope used of a windowed limit in its current window (one row per
    scope and limit; a new window overwrites the old). providers_app/limits."""

    scope = models.CharField("scope", max_length=100)
    kind = models.CharField("limit", max_length=40)
    window_start = models.BigIntegerField("window start (epoch seconds)")
    used = models.BigIntegerField("used", default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["scope", "kind"], name="limit_counter_scope_kind")
        ]

    def __str__(self) -> str:
        return f"{self.scope} {self.kind} {self.used}"


class UsageLedger(models.Model):
    """Tokens and spend of one (day, provider, route, client key), sharded by process.

    Written from each process's buffer (engine/usage.py) at most every
    FALLBACK_COUNTER_FLUSH_S; housekeeping folds the shards of past days into
    shard 0 and prunes days older than FALLBACK_USAGE_RETENTION_DAYS. Names, not
    foreign keys: the ledger outlives a deleted provider, route or key. Money is
    in nano-dollars (10^-9 USD), integers, so sums are exact.
    """

    day = models.DateField("day (UTC)")
    provider = models.CharField("provider", max_length=100)
    route = models.CharField("route", max_length=100, blank=True)
    key_name = models.CharField("client key", max_length=100, blank=True)
    shard = models.PositiveSmallIntegerField("shard", default=0)
    calls = models.BigIntegerField("answered calls", default=0)
    estimated_calls = models.BigIntegerField("calls with estimated tokens", default=0)
    failed_attempts = models.BigIntegerField("billed failed attempts", default=0)
    input_tokens = models.BigIntegerField("input tokens", default=0)
    cached_input_tokens = models.BigIntegerField("cached input tokens", default=0)
    output_tokens = models.BigIntegerField("output tokens", default=0)
    cost_nusd = models.BigIntegerField("cost (nano-dollars)", default=0)
    failed_cost_nusd = models.BigIntegerField("cost of failed attempts (nano-dollars)", default=0)
    failover_extra_nusd = models.BigIntegerField(
        "failover cost (nano-dollars)",
        default=0,
        help_text="Cost of the answers minus what the route's first provider would have billed.",
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["day", "provider", "route", "key_name", "shard"],
                name="usage_ledger_unique",
            ),
        ]
        indexes = [models.Index(fields=["day"])]

    def __str__(self) -> str:
        return f"{self.day} {self.provider} {self.route} {self.key_name}"


class UsageReport(UsageLedger):
    """No data of its own: gives the admin a "Usage and cost" page at
    `admin/providers_app/usagereport/`, listed on the admin index."""

    class Meta:
        proxy = True
        verbose_name = "usage and cost"
        verbose_name_plural = "usage and cost"
