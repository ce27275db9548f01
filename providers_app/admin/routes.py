"""Routes: a name clients send as `model`, with its providers in drag-and-drop order."""

from adminsortable2.admin import (
    CustomInlineFormSet,
    SortableAdminBase,
    SortableTabularInline,
)
from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.utils.html import format_html
from django.utils.text import capfirst

from ..models import (
    ClientKey,
    Route,
    RouteMember,
)
from .common import ActionPermissionMixin, ConfigChangeEventsMixin, ScreenMedia, state_badge


class RouteMemberFormSet(CustomInlineFormSet):
    """Sortable2's inline formset, refusing a new order without `reorder_route`.

    `may_reorder` is set per request (RouteAdmin.get_formset). Adding or removing
    a member is editing the route (change_route); any change of the relative
    order of the providers that are in the route before and after the save needs
    the reorder permission too, however it is spelt (dragging, or removing a
    member and adding it again elsewhere in the same POST).
    """

    may_reorder = True

    def clean(self) -> None:
        super().clean()
        if self.may_reorder or self.instance.pk is None:
            return
        before = list(
            RouteMember.objects.filter(route=self.instance)
            .order_by("order", "id")
            .values_list("provider_id", flat=True)
        )
        kept = [
            form.cleaned_data
            for form in self.forms
            if form.cleaned_data and not form.cleaned_data.get("DELETE")
        ]
        after_members = sorted(
            (data for data in kept if data.get("provider")),
            key=lambda data: data.get("order") or 0,
        )
        after = [data["provider"].pk for data in after_members]
        common = set(before) & set(after)
        if [p for p in before if p in common] != [p for p in after if p in common]:
            raise ValidationError(
                "You may not reorder the providers of a route (permission "
                "'Can reorder the providers of a route'); nothing was saved."
            )


class RouteMemberInline(SortableTabularInline):
    """The route's providers, dragged into order; each member's breaker beside it."""

    Media = ScreenMedia  # admin.css: a readable "position 1" label
    model = RouteMember
    formset = RouteMemberFormSet
    # The same order the Providers page shows with this route chosen (its ↑/↓
    # buttons are the keyboard's way); the next request on the route follows it.
    verbose_name_plural = "providers, in the order tried (the Providers page shows the same order)"
    fields = ("provider", "breaker_state")
    readonly_fields = ("breaker_state",)
    extra = 0

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("provider__breaker")

    # A member is part of its route: the route's permissions decide.
    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.has_perm("providers_app.view_route") or self.has_change_permission(
            request, obj
        )

    def has_add_permission(self, request, obj=None) -> bool:
        return request.user.has_perm("providers_app.change_route") or (
            obj is None and request.user.has_perm("providers_app.add_route")
        )

    def has_change_permission(self, request, obj=None) -> bool:
        return self.has_add_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return self.has_add_permission(request, obj)

    @admin.display(description="breaker")
    def breaker_state(self, member: RouteMember) -> str:
        if member.provider_id is None:
            return "-"
        badge = state_badge(member.provider.breaker)
        if not member.provider.enabled:
            return format_html("{} (provider disabled)", badge)
        return badge


@admin.register(Route)
class RouteAdmin(
    ConfigChangeEventsMixin, ActionPermissionMixin, SortableAdminBase, admin.ModelAdmin
):
    """Named routes: what a client sends as `model`, and the providers it tries in order.

    Saving the route (its members' order included) bumps the routing version,
    so the very next request on the route follows it (docs/engine.md).
    """

    inlines = (RouteMemberInline,)
    list_display = (
        "name",
        "is_default",
        "providers_in_order",
        "deadline_s",
        "failover_on_content_filter",
        "hold_back",
    )
    list_filter = ("is_default",)
    search_fields = ("name",)
    fields = (
        "name",
        "is_default",
        "deadline_s",
        "failover_on_content_filter",
        "hold_back",
        "auto_hold_back",
        "tokens_per_minute",
        "monthly_spend_limit_usd",
    )

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("members__provider")

    def get_deleted_objects(self, objs, request):
        """Django's summary would list each key's limit as "ClientKey_routes object
        (1)": name the client keys instead, and what deleting does to them."""
        to_delete, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        through = ClientKey.routes.through
        to_delete = _without_instances_of(to_delete, through)
        model_count.pop(through._meta.verbose_name_plural, None)
        for route in objs:
            for key in route.client_keys.order_by("name").prefetch_related("routes"):
                left = [r.name for r in key.routes.all() if r.pk != route.pk]
                to_delete.append(
                    f"Client key {key}: limited to route {route.name}; afterwards "
                    + (
                        f"limited to {', '.join(left)}"
                        if left
                        else "refused on every route (it stays limited: fail closed)"
                    )
                )
        return to_delete, model_count, perms_needed, protected

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "failover_on_content_filter":
            kwargs["widget"] = forms.NullBooleanSelect()
            kwargs["widget"].choices = [
                ("unknown", "As FALLBACK_FAILOVER_ON_CONTENT_FILTER"),
                ("true", "Fail over to the next provider"),
                ("false", "Stop: answer the caller with the refusal"),
            ]
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def get_formsets_with_inlines(self, request, obj=None):
        may_reorder = request.user.has_perm("providers_app.reorder_route")
        for formset, inline in super().get_formsets_with_inlines(request, obj):
            if issubclass(formset, RouteMemberFormSet):
                formset = type(formset.__name__, (formset,), {"may_reorder": may_reorder})
            yield formset, inline

    @admin.display(description="providers, in order")
    def providers_in_order(self, route: Route) -> str:
        members = sorted(route.members.all(), key=lambda m: (m.order, m.id))
        return " → ".join(member.provider.name for member in members) or "-"


def _without_instances_of(nested: list, model) -> list:
    """Django's nested list of what a delete takes along, without one model's rows
    (they are rendered as text naming the row's model and id)."""
    prefix = f"{capfirst(model._meta.verbose_name)}: "
    kept = []
    for item in nested:
        if isinstance(item, list):
            inner = _without_instances_of(item, model)
            if inner:
                kept.append(inner)
        elif not str(item).startswith(prefix):
            kept.append(item)
    return kept
