"""Admin: providers in drag-and-drop order with operator actions, read-only history,
and the failover dashboard.

Operator actions (run a health check now, reset, force open until a time, force
closed, never trip, enable, disable) are offered on the provider list (for the
selected rows) and as buttons on a provider's page. Each one calls a service in
`services.operator`, which writes a `manual` FailoverEvent with the acting
user, and is recorded in Django's admin history (`LogEntry`) as well.
"""

from collections.abc import Callable
from datetime import datetime, timedelta

from adminsortable2.admin import SortableAdminMixin
from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from . import ops_views
from .models import (
    BreakerState,
    ClientKey,
    Dashboard,
    FailoverEvent,
    HealthCheckResult,
    Provider,
)
from .selectors import CAPABILITY_FIELDS
from .services import operator
from .services.client_keys import client_key_create, client_key_revoke
from .services.dashboard import STATE_COLOURS
from .services.providers import provider_capabilities, provider_priorities_set

FORCE_OPEN_DEFAULT = timedelta(hours=1)


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


class ForceOpenForm(forms.Form):
    """When a maintenance drain ends: a time, or never (until someone resets it)."""

    until = forms.DateTimeField(
        label="Forced open until",
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        help_text="Server time (UTC). After this the breaker closes by itself.",
    )
    no_expiry = forms.BooleanField(
        label="No expiry: stay open until an admin resets or closes it", required=False
    )

    def clean(self):
        data = super().clean()
        if data.get("no_expiry"):
            data["until"] = None
        elif not data.get("until"):
            self.add_error("until", "Choose when the drain ends, or tick 'No expiry'.")
        elif data["until"] <= timezone.now():
            self.add_error("until", "Choose a time in the future.")
        return data

    @classmethod
    def with_default(cls) -> "ForceOpenForm":
        return cls(initial={"until": timezone.now() + FORCE_OPEN_DEFAULT})


# name -> (label for buttons, messages and history; the service call)
Operation = Callable[..., operator.ActionResult]
OPERATIONS: dict[str, tuple[str, Operation]] = {
    "reset": ("Reset breaker", operator.operator_breaker_reset),
    "force_closed": ("Force breaker closed", operator.operator_breaker_force_closed),
    "never_trip": ("Breaker: never trip", operator.operator_breaker_disable),
    "enable": ("Enable provider", operator.operator_provider_enable),
    "disable": ("Disable provider", operator.operator_provider_disable),
}


def _request_id(request: HttpRequest) -> str:
    return getattr(request, "request_id", "") or request.headers.get("X-Request-ID", "")[:64]


class CapabilitySelect(forms.NullBooleanSelect):
    """Empty reads as "the default", not Django's "Unknown"."""

    def __init__(self, attrs=None):
        super().__init__(attrs)
        self.choices = [
            ("unknown", "Default for the kind and model"),
            ("true", "Yes"),
            ("false", "No"),
        ]


class ProviderForm(forms.ModelForm):
    class Meta:
        model = Provider
        fields = "__all__"  # noqa: DJ007 (the fieldsets below choose what is shown)
        widgets = dict.fromkeys(CAPABILITY_FIELDS, CapabilitySelect)


@admin.register(Provider)
class ProviderAdmin(SortableAdminMixin, admin.ModelAdmin):
    form = ProviderForm
    list_display = (
        "priority",
        "name",
        "kind",
        "model",
        "enabled",
        "breaker_state",
        "cooldown",
        "health",
        "timeout_s",
        "max_attempts",
    )
    list_display_links = ("name",)
    list_filter = ("enabled", "kind")
    search_fields = ("name", "model", "base_url")
    list_per_page = 500  # one page, so drag and drop always sees every provider
    readonly_fields = ("breaker_summary", "capability_summary", "created_at", "updated_at")
    actions = (
        "action_health_check",
        "action_reset",
        "action_force_open",
        "action_force_closed",
        "action_never_trip",
        "action_enable",
        "action_disable",
    )
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
        (
            "Capabilities (a request needing one skips providers without it)",
            {
                "fields": (
                    "supports_tools",
                    "supports_structured_output",
                    "supports_images",
                    "supports_prefill",
                    "capability_summary",
                )
            },
        ),
        ("Breaker state (read-only)", {"fields": ("breaker_summary",)}),
        (None, {"fields": ("created_at", "updated_at")}),
    )

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("breaker", "health_schedule")

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

    # -- columns ---------------------------------------------------------------

    @admin.display(description="breaker")
    def breaker_state(self, provider: Provider) -> str:
        return _state_badge(getattr(provider, "breaker", None))

    @admin.display(description="cooling down until")
    def cooldown(self, provider: Provider):
        breaker = getattr(provider, "breaker", None)
        if breaker and breaker.cooldown_until and breaker.cooldown_until > timezone.now():
            return breaker.cooldown_until
        return "-"

    @admin.display(description="health")
    def health(self, provider: Provider) -> str:
        schedule = getattr(provider, "health_schedule", None)
        if schedule is None or schedule.next_check_at is None:
            return "-"
        if schedule.consecutive_failures:
            return f"{schedule.consecutive_failures} failed"
        return "ok"

    @admin.display(description="in force")
    def capability_summary(self, provider: Provider) -> str:
        if not provider.kind or not provider.model:
            return "-"
        return " · ".join(
            f"{name.replace('_', ' ')}: {'yes' if value else 'no'} "
            f"({'default' if is_default else 'set here'})"
            for name, value, is_default in provider_capabilities(provider=provider)
        )

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

    # -- operator actions on the list --------------------------------------------

    @admin.action(description="Run a health check now", permissions=["change"])
    def action_health_check(self, request, queryset):
        for provider in queryset:
            self._health_check(request, provider)

    @admin.action(description="Reset breaker (closed, clean slate)", permissions=["change"])
    def action_reset(self, request, queryset):
        self._operate_all(request, queryset, "reset")

    @admin.action(description="Force breaker open until… (maintenance)", permissions=["change"])
    def action_force_open(self, request, queryset):
        """An intermediate page asks until when; its form posts back to this action."""
        form = ForceOpenForm(request.POST) if "apply" in request.POST else None
        if form is not None and form.is_valid():
            for provider in queryset:
                self._force_open(request, provider, form.cleaned_data["until"])
            return None
        return self._force_open_page(
            request, list(queryset), form or ForceOpenForm.with_default(), from_changelist=True
        )

    @admin.action(description="Force breaker closed", permissions=["change"])
    def action_force_closed(self, request, queryset):
        self._operate_all(request, queryset, "force_closed")

    @admin.action(description="Breaker: never trip", permissions=["change"])
    def action_never_trip(self, request, queryset):
        self._operate_all(request, queryset, "never_trip")

    @admin.action(description="Enable selected providers", permissions=["change"])
    def action_enable(self, request, queryset):
        self._operate_all(request, queryset, "enable")

    @admin.action(description="Disable selected providers", permissions=["change"])
    def action_disable(self, request, queryset):
        self._operate_all(request, queryset, "disable")

    # -- operator actions on a provider's page ------------------------------------

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        custom = [
            path(
                "<path:object_id>/operate/<str:action>/",
                self.admin_site.admin_view(self.operate_view),
                name="{}_{}_operate".format(*info),
            ),
            path(
                "<path:object_id>/force-open/",
                self.admin_site.admin_view(self.force_open_view),
                name="{}_{}_force_open".format(*info),
            ),
        ]
        return custom + super().get_urls()

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "operations": [(name, label) for name, (label, _) in OPERATIONS.items()],
            "dashboard_url": reverse(f"{self.admin_site.name}:providers_app_dashboard_changelist"),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def operate_view(self, request, object_id: str, action: str):
        return require_POST(self._operate_view)(request, object_id, action)

    def _operate_view(self, request, object_id: str, action: str):
        provider = self._provider_to_operate(request, object_id)
        if action == "health_check":
            self._health_check(request, provider)
        elif action in OPERATIONS:
            self._operate(request, provider, action)
        else:
            raise Http404(f"Unknown action {action!r}")
        return HttpResponseRedirect(self._change_url(provider))

    def force_open_view(self, request, object_id: str):
        provider = self._provider_to_operate(request, object_id)
        if request.method == "POST":
            form = ForceOpenForm(request.POST)
            if form.is_valid():
                self._force_open(request, provider, form.cleaned_data["until"])
                return HttpResponseRedirect(self._change_url(provider))
        else:
            form = ForceOpenForm.with_default()
        return self._force_open_page(request, [provider], form, from_changelist=False)

    # -- shared ------------------------------------------------------------------

    def _provider_to_operate(self, request, object_id: str) -> Provider:
        provider = get_object_or_404(Provider, pk=object_id)
        if not self.has_change_permission(request, provider):
            raise PermissionDenied
        return provider

    def _change_url(self, provider: Provider) -> str:
        return reverse(f"{self.admin_site.name}:providers_app_provider_change", args=[provider.pk])

    def _operate_all(self, request, queryset, action: str) -> None:
        for provider in queryset:
            self._operate(request, provider, action)

    def _operate(self, request, provider: Provider, action: str) -> None:
        label, call = OPERATIONS[action]
        result = call(provider_id=provider.pk, actor=request.user, request_id=_request_id(request))
        self._record(request, provider, label, result)

    def _force_open(self, request, provider: Provider, until: datetime | None) -> None:
        result = operator.operator_breaker_force_open(
            provider_id=provider.pk, until=until, actor=request.user,
            request_id=_request_id(request),
        )  # fmt: skip
        self._record(request, provider, "Force breaker open", result)

    def _health_check(self, request, provider: Provider) -> None:
        result, report = operator.operator_health_check(
            provider_id=provider.pk, actor=request.user, request_id=_request_id(request)
        )
        self._record(request, provider, "Health check", result, failed=report.ok is False)

    def _record(
        self,
        request,
        provider: Provider,
        label: str,
        result: operator.ActionResult,
        *,
        failed: bool = False,
    ) -> None:
        """Admin history (LogEntry) and a message; the FailoverEvent is the service's."""
        self.log_change(request, provider, f"{label}: {result.message}.")
        if failed:
            level = messages.ERROR
        elif result.changed:
            level = messages.SUCCESS
        else:
            level = messages.WARNING
        self.message_user(request, f"{provider.name}: {result.message}.", level)

    def _force_open_page(
        self, request, providers: list[Provider], form: ForceOpenForm, *, from_changelist: bool
    ) -> TemplateResponse:
        context = {
            **self.admin_site.each_context(request),
            "title": "Force breaker open (maintenance drain)",
            "opts": self.opts,
            "providers": providers,
            "form": form,
            "from_changelist": from_changelist,
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
            "original": providers[0] if not from_changelist else None,
        }
        return TemplateResponse(request, "admin/providers_app/provider/force_open.html", context)


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
    list_filter = (
        "kind",
        "reason",
        ("provider", admin.RelatedOnlyFieldListFilter),
        ("to_provider", admin.RelatedOnlyFieldListFilter),
        ("actor", admin.RelatedOnlyFieldListFilter),
        "created_at",
    )
    search_fields = ("=request_id", "detail")
    search_help_text = "Exact request id, or words of the detail."
    date_hierarchy = "created_at"
    list_select_related = ("provider", "to_provider", "actor")
    show_full_result_count = False  # the history can be long: skip the second COUNT(*)

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "dashboard_url": reverse(f"{self.admin_site.name}:providers_app_dashboard_changelist"),
        }
        return super().changelist_view(request, extra_context)


@admin.register(Dashboard)
class DashboardAdmin(admin.ModelAdmin):
    """Charts of the failover history: one read-only page, for whoever may read events."""

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.has_perm("providers_app.view_failoverevent")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_urls(self):
        return [
            path(
                "",
                self.admin_site.admin_view(self.changelist_view),
                name="providers_app_dashboard_changelist",
            )
        ]

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_permission(request):
            raise PermissionDenied
        return ops_views.dashboard_page(request, admin_site=self.admin_site, opts=self.opts)


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
