"""What every admin screen of the app shares: the stylesheet, the breaker badge,
per-action permissions, read-only history and the request id of an operator action."""

import json

from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.core.exceptions import PermissionDenied
from django.http import (
    HttpRequest,
)
from django.utils.html import format_html

from ..dashboard.colours import STATE_COLOURS
from ..models import BreakerState, Provider
from ..services.providers import config_change_record


class ScreenMedia:
    """The stylesheet (and, on the provider list, the script) of these admin screens."""

    css = {"all": ["providers_app/admin.css"]}


class CardListMedia(ScreenMedia):
    """ScreenMedia, and on a phone the list shows one card per row (admin.css): the
    event log, the traces and the alert channels are too wide to scroll sideways."""

    js = ["providers_app/list_cards.js"]


def state_badge(breaker: BreakerState) -> str:
    return format_html(
        '<span style="color:#fff;background:{};padding:2px 6px;border-radius:3px">{}</span>',
        STATE_COLOURS.get(breaker.state, "#616161"),
        breaker.get_state_display(),
    )


class ConfigChangeEventsMixin:
    """Every add, edit or delete through this admin's forms is also a `manual`
    event (reason `config_changed`, with who and which fields), so configuration
    changes are drawn on the dashboard and listed in the event log. Operator
    actions write their own events (services.operator), not this one."""

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        message = self.construct_change_message(request, form, formsets, add=not change)
        if change and not message:
            return  # saved without a change
        detail = LogEntry(change_message=json.dumps(message)).get_change_message()
        self._config_event(request, form.instance, "changed" if change else "added", detail)

    def delete_model(self, request, obj):
        self._config_event(request, obj, "deleted", "", deleted=True)
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self._config_event(request, obj, "deleted", "", deleted=True)
        super().delete_queryset(request, queryset)

    def _config_event(self, request, obj, verb: str, detail: str, *, deleted=False) -> None:
        is_provider = isinstance(obj, Provider)
        config_change_record(
            actor=request.user,
            what=f"{obj._meta.verbose_name} {obj} {verb}",
            detail=detail,
            provider_id=obj.pk if is_provider and not deleted else None,
            route="" if is_provider else str(obj),
        )


class ActionPermissionMixin:
    """A POSTed action the user may not run is a 403, not a silent "No action
    selected" (Django drops actions whose permission fails from the choices)."""

    def changelist_view(self, request, extra_context=None):
        action = request.POST.get("action") if request.method == "POST" else None
        forbidden = action in self._declared_actions() and action not in self.get_actions(request)
        if action and forbidden:
            raise PermissionDenied
        return super().changelist_view(request, extra_context)

    def _declared_actions(self) -> set[str]:
        # Every action before Django filters them by permission (site-wide ones included).
        return {name for _, name, _ in self._get_base_actions()}


class ReadOnlyAdmin(admin.ModelAdmin):
    """History is written by services only; staff read it."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


def request_id_of(request: HttpRequest) -> str:
    return getattr(request, "request_id", "") or request.headers.get("X-Request-ID", "")[:64]
