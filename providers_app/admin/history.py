"""Read-only history: failover events and health-check results.

The dashboard is its own package, `providers_app.dashboard`."""

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from ..models import FailoverEvent, HealthCheckResult
from ..timefmt import milliseconds_text, moment_html
from .common import CardListMedia, ReadOnlyAdmin, ScreenMedia
from .traces import trace_url_for

# The kinds written while serving a request: their request id has a trace.
REQUEST_KINDS = {
    FailoverEvent.Kind.FAILOVER,
    FailoverEvent.Kind.ALL_FAILED,
    FailoverEvent.Kind.CONTINUATION,
    FailoverEvent.Kind.STREAM_INTERRUPTED,
    FailoverEvent.Kind.PREFILL_REFUSED,
}


@admin.register(FailoverEvent)
class FailoverEventAdmin(ReadOnlyAdmin):
    Media = CardListMedia
    list_display = (
        "time",
        "kind",
        "route",
        "provider",
        "to_provider",
        "reason",
        "status_code",
        "attempt",
        "latency",
        "count",
        "request",
        "actor",
    )
    # The event's own page: its time first, latency as people read it.
    fields = (
        "time",
        "kind",
        "route",
        "provider",
        "to_provider",
        "reason",
        "status_code",
        "detail",
        "attempt",
        "latency",
        "delivered_chars",
        "count",
        "request_id",
        "actor",
    )
    readonly_fields = ("time", "latency")
    list_filter = (
        "kind",
        "reason",
        "route",
        ("provider", admin.RelatedOnlyFieldListFilter),
        ("to_provider", admin.RelatedOnlyFieldListFilter),
        ("actor", admin.RelatedOnlyFieldListFilter),
        "created_at",
    )
    search_fields = ("=request_id", "detail", "reason", "provider__name", "to_provider__name")
    search_help_text = "Exact request id, or words of a provider's name, the reason or the detail."
    date_hierarchy = "created_at"
    list_select_related = ("provider", "to_provider", "actor")
    show_full_result_count = False  # the history can be long: skip the second COUNT(*)

    @admin.display(description="time", ordering="created_at")
    def time(self, event: FailoverEvent):
        return moment_html(event.created_at)

    @admin.display(description="latency", ordering="latency_ms")
    def latency(self, event: FailoverEvent) -> str:
        return milliseconds_text(event.latency_ms)

    @admin.display(description="request id", ordering="request_id")
    def request(self, event: FailoverEvent) -> str:
        # Ids run to 64 characters; the cell may wrap them instead of widening the table.
        # A request's id opens its trace (admin/traces.py).
        if not event.request_id or event.kind not in REQUEST_KINDS:  # health checks, operators
            return format_html('<span class="request-id">{}</span>', event.request_id or "-")
        return format_html(
            '<a class="request-id" href="{}" title="the request\'s trace">{}</a>',
            trace_url_for(event.request_id),
            event.request_id,
        )

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "dashboard_url": reverse(f"{self.admin_site.name}:providers_app_dashboard_changelist"),
        }
        return super().changelist_view(request, extra_context)


@admin.register(HealthCheckResult)
class HealthCheckResultAdmin(ReadOnlyAdmin):
    Media = ScreenMedia
    list_display = ("checked", "provider", "ok", "latency", "status_code", "error_class")
    list_filter = ("ok", "provider", "error_class", "checked_at")
    search_fields = ("detail", "error_class")
    date_hierarchy = "checked_at"
    list_select_related = ("provider",)

    @admin.display(description="checked", ordering="checked_at")
    def checked(self, result: HealthCheckResult):
        return moment_html(result.checked_at)

    @admin.display(description="latency", ordering="latency_ms")
    def latency(self, result: HealthCheckResult) -> str:
        return milliseconds_text(result.latency_ms)
