"""Admin: providers in drag-and-drop order, read-only breaker state and history."""

from adminsortable2.admin import SortableAdminMixin
from django.contrib import admin, messages
from django.utils import timezone
from django.utils.html import format_html

from .models import BreakerState, ClientKey, FailoverEvent, HealthCheckResult, Provider
from .services.client_keys import client_key_create, client_key_revoke
from .services.providers import provider_priorities_set

STATE_COLOURS = {
    BreakerState.State.CLOSED: "#2e7d32",
    BreakerState.State.HALF_OPEN: "#ef6c00",
    BreakerState.State.OPEN: "#c62828",
    BreakerState.State.FORCED_OPEN: "#6a1b9a",
    BreakerState.State.DISABLED: "#616161",
}


def _state_badge(breaker: BreakerState | None) -> str:
    if breaker is None:
        return "-"
    return format_html(
        '<span style="color:#fff;background:{};padding:2px 6px;border-radius:3px">{}</span>',
        STATE_COLOURS.get(breaker.state, "#616161"),
        breaker.get_state_display(),
    )


class ReadOnlyAdmin(admin.ModelAdmin):
    """History is written by services only; staff read it."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Provider)
class ProviderAdmin(SortableAdminMixin, admin.ModelAdmin):
    list_display = (
        "priority",
        "name",
        "kind",
        "model",
        "enabled",
        "breaker_state",
        "cooldown",
        "timeout_s",
        "max_attempts",
    )
    list_display_links = ("name",)
    list_filter = ("enabled", "kind")
    search_fields = ("name", "model", "base_url")
    list_per_page = 500  # one page, so drag and drop always sees every provider
    readonly_fields = ("breaker_summary", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("name", "kind", "base_url", "model", "api_key_env", "enabled")}),
        ("Per request", {"fields": ("timeout_s", "max_attempts", "context_window", "extra")}),
        (
            "Breaker overrides (empty: the FALLBACK_BREAKER_* default)",
            {
                "classes": ("collapse",),
                "fields": (
                    "failure_threshold",
                    "failure_rate_threshold",
                    "slow_call_rate_threshold",
                    "slow_call_threshold_s",
                    "minimum_calls",
                    "half_open_probes",
                    "open_base_s",
                    "open_max_s",
                ),
            },
        ),
        ("Breaker state (read-only)", {"fields": ("breaker_summary",)}),
        (None, {"fields": ("created_at", "updated_at")}),
    )

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("breaker")

    def get_actions(self, request):
        # Sortable2's move-to-page actions shift rows with F()+1, which a unique
        # priority refuses; with one page they have no use anyway.
        actions = super().get_actions(request)
        for name in [a for a in actions if a.startswith("move_to_")]:
            del actions[name]
        return actions

    def _update_order(self, updated_items, extra_model_filters):
        """Sortable2's reorder endpoint, through the service that keeps priorities unique."""
        return provider_priorities_set(
            priorities={int(pk): int(rank) for pk, rank in updated_items}
        )

    @admin.display(description="breaker")
    def breaker_state(self, provider: Provider) -> str:
        return _state_badge(getattr(provider, "breaker", None))

    @admin.display(description="cooling down until")
    def cooldown(self, provider: Provider):
        breaker = getattr(provider, "breaker", None)
        if breaker and breaker.cooldown_until and breaker.cooldown_until > timezone.now():
            return breaker.cooldown_until
        return "-"

    @admin.display(description="breaker")
    def breaker_summary(self, provider: Provider) -> str:
        breaker = getattr(provider, "breaker", None)
        if breaker is None:
            return "-"
        return format_html(
            "{} &middot; generation {} &middot; {} consecutive failures &middot; "
            "open until {} &middot; cooldown until {} &middot; last error: {}",
            _state_badge(breaker),
            breaker.generation,
            breaker.consecutive_failures,
            breaker.open_until or "-",
            breaker.cooldown_until or "-",
            breaker.last_error or "-",
        )


@admin.register(FailoverEvent)
class FailoverEventAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "kind",
        "provider",
        "to_provider",
        "reason",
        "status_code",
        "attempt",
        "latency_ms",
        "count",
        "request_id",
        "actor",
    )
    list_filter = ("kind", "reason", "provider", "created_at")
    search_fields = ("request_id", "detail")
    date_hierarchy = "created_at"
    list_select_related = ("provider", "to_provider", "actor")


@admin.register(HealthCheckResult)
class HealthCheckResultAdmin(ReadOnlyAdmin):
    list_display = ("checked_at", "provider", "ok", "latency_ms", "status_code", "error_class")
    list_filter = ("ok", "provider", "error_class", "checked_at")
    search_fields = ("detail", "error_class")
    date_hierarchy = "checked_at"
    list_select_related = ("provider",)


@admin.register(ClientKey)
class ClientKeyAdmin(admin.ModelAdmin):
    list_display = ("name", "prefix", "created_at", "last_used_at", "revoked_at")
    fields = ("name",)
    actions = ("revoke",)

    def has_change_permission(self, request, obj=None) -> bool:
        return obj is None  # keys are created or revoked, never edited

    def save_model(self, request, obj, form, change):
        created = client_key_create(name=obj.name)
        obj.pk = created.client_key.pk
        messages.warning(
            request,
            f"The key for {obj.name} is {created.raw_key} . Copy it now: it is stored "
            "hashed and will not be shown again.",
        )

    @admin.action(description="Revoke selected keys")
    def revoke(self, request, queryset):
        for key in queryset:
            client_key_revoke(client_key=key)
        self.message_user(request, f"Revoked {queryset.count()} key(s).")
