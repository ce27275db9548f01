"""Alert channels (where alerts go, with "send a test alert") and the incidents, read-only."""

from django.contrib import admin, messages

from ..models import AlertChannel, AlertIncident
from ..services.alerts import AlertDeliveryError, alert_test_send
from ..timefmt import moment_html
from .common import ActionPermissionMixin, CardListMedia, ReadOnlyAdmin, ScreenMedia


@admin.register(AlertChannel)
class AlertChannelAdmin(ActionPermissionMixin, admin.ModelAdmin):
    Media = CardListMedia
    list_display = (
        "name",
        "kind",
        "enabled",
        "destination",
        "on_breaker",
        "on_route_down",
        "on_failover_rate",
    )
    list_filter = ("kind", "enabled")
    fieldsets = (
        (None, {"fields": ("name", "kind", "enabled")}),
        ("Webhook", {"fields": ("url", "secret_env")}),
        ("Email", {"fields": ("emails",)}),
        ("Alerts", {"fields": ("on_breaker", "on_route_down", "on_failover_rate")}),
    )
    actions = ("send_test_alert",)

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "url":
            kwargs["assume_scheme"] = "https"  # Django 6's default, chosen now
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    @admin.display(description="destination")
    def destination(self, channel: AlertChannel) -> str:
        # The URL as stored ({secret} stays a placeholder); never the secret's value.
        return channel.url if channel.kind == AlertChannel.Kind.WEBHOOK else channel.emails

    @admin.action(description="Send a test alert", permissions=["change"])
    def send_test_alert(self, request, queryset):
        for channel in queryset:
            try:
                alert_test_send(channel)
            except AlertDeliveryError as error:
                self.message_user(
                    request, f"Test alert not delivered to {channel.name}: {error}.", messages.ERROR
                )
            else:
                self.message_user(request, f"Test alert sent to {channel.name}.", messages.SUCCESS)


@admin.register(AlertIncident)
class AlertIncidentAdmin(ReadOnlyAdmin):
    Media = ScreenMedia
    list_display = ("opened", "kind", "subject", "resolved", "open_sent", "resolve_sent", "detail")
    list_filter = ("kind", ("resolved_at", admin.EmptyFieldListFilter), "opened_at")
    search_fields = ("subject", "detail")
    date_hierarchy = "opened_at"

    @admin.display(description="opened", ordering="opened_at")
    def opened(self, incident: AlertIncident):
        return moment_html(incident.opened_at)

    @admin.display(description="resolved", ordering="resolved_at")
    def resolved(self, incident: AlertIncident):
        return moment_html(incident.resolved_at) if incident.resolved_at else "open"
