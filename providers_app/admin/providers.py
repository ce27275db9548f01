"""Providers: a route's order (drag and drop, or the keyboard's up/down buttons),
breaker state, and the operator actions.

The list shows the providers in the order of one route, named above it and
switched with `?route=NAME` (the default route unless another is chosen; with
no route at all, the implicit one). Reordering here rewrites that route's
members, exactly as the route's own page does, so the next request on that
route follows it; providers outside the route are listed after its members.

Operator actions (run a health check now, reset, force open until a time, force
closed, never trip, enable, disable) are offered on the provider list (for the
selected rows) and as buttons on a provider's page. Each one calls a service in
`services.operator`, which writes a `manual` FailoverEvent with the acting
user, and is recorded in Django's admin history (`LogEntry`) as well."""

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from types import MethodType
from urllib.parse import urlencode

from adminsortable2.admin import (
    SortableAdminMixin,
)
from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.exceptions import PermissionDenied
from django.db.models import F, Value, Window
from django.db.models.functions import RowNumber
from django.http import (
    Http404,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseForbidden,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
)
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.functional import lazy
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST

from ..admin_forms import ProviderAdminForm
from ..engine.clock import get_clock
from ..engine.routing import IMPLICIT_ROUTE
from ..models import (
    BreakerState,
    Provider,
    Route,
)
from ..selectors import BREAKER_OVERRIDE_FIELDS
from ..selectors.providers import provider_last_continuation_off
from ..services import operator
from ..services.providers import provider_capabilities, provider_continuation
from ..services.routes import RouteOrderError, route_default_append, route_move, route_reorder
from ..timefmt import moment_html
from .common import (
    ActionPermissionMixin,
    ConfigChangeEventsMixin,
    ScreenMedia,
    request_id_of,
    state_badge,
)
from .provider_page import provider_page_status

FORCE_OPEN_DEFAULT = timedelta(hours=1)
ROUTE_PARAM = "route"  # the list's route switcher: ?route=NAME


TIME_INPUT_FORMAT = "%Y-%m-%d %H:%M"
TIME_INPUT_PATTERN = r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2})?"


class ForceOpenForm(forms.Form):
    """When a maintenance drain ends: a time, or never (until someone resets it)."""

    # A text field, not the browser's datetime picker: that one shows the
    # browser's locale ("12/07/2026, 12:45 AM"); every screen here reads
    # 24-hour time in the site's time zone (timefmt), so the form does too.
    until = forms.DateTimeField(
        label="Forced open until",
        required=False,
        input_formats=[TIME_INPUT_FORMAT, "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M"],
        widget=forms.DateTimeInput(
            format=TIME_INPUT_FORMAT,
            attrs={"placeholder": "YYYY-MM-DD HH:MM", "pattern": TIME_INPUT_PATTERN, "size": 16},
        ),
        help_text=lazy(
            lambda: (
                f"24-hour time, {timezone.get_current_timezone_name()}. "
                "After this the breaker closes by itself."
            ),
            str,
        )(),
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
        elif data["until"] <= get_clock().now():
            self.add_error("until", "Choose a time in the future.")
        return data

    @classmethod
    def with_default(cls) -> "ForceOpenForm":
        return cls(initial={"until": get_clock().now() + FORCE_OPEN_DEFAULT})


# name -> (label for buttons, messages and history; the service call)
Operation = Callable[..., operator.ActionResult]
OPERATIONS: dict[str, tuple[str, Operation]] = {
    "reset": ("Reset breaker", operator.operator_breaker_reset),
    "force_closed": ("Force breaker closed", operator.operator_breaker_force_closed),
    # "never trip" keeps routing to the provider with its breaker switched off;
    # "provider_disable" stops routing to it. Names that cannot be taken for each other.
    "never_trip": ("Breaker: never trip", operator.operator_breaker_never_trip),
    "provider_enable": ("Enable provider", operator.operator_provider_enable),
    "provider_disable": ("Disable provider", operator.operator_provider_disable),
}


def offered_operations(provider: Provider) -> list[str]:
    """The page's buttons: only what changes something in the provider's current
    state (no "Enable" on an enabled provider, no "Force closed" on a closed
    breaker). The list's bulk actions stay complete: they act on mixed rows."""
    state = BreakerState.State
    breaker = provider.breaker
    current = breaker.state
    now = get_clock().now()
    dirty = (
        breaker.consecutive_failures
        or breaker.open_cycles
        or (breaker.cooldown_until and breaker.cooldown_until > now)
    )
    offered = []
    if current != state.CLOSED or dirty:
        offered.append("reset")
    if current in (state.OPEN, state.HALF_OPEN, state.FORCED_OPEN):
        offered.append("force_closed")
    if current not in (state.NEVER_TRIP, state.FORCED_OPEN):
        offered.append("never_trip")
    offered.append("provider_disable" if provider.enabled else "provider_enable")
    return offered


def _drag_handle(admin_instance, provider: Provider) -> str:
    """Sortable2's handle, numbered by the provider's place in the shown route.
    Providers outside the route get a handle without a provider id: sortable2
    needs one on every row to number a drop, and saves only rows that carry an id."""
    if provider.route_position is None:
        return mark_safe('<div class="handle outside-route" order="100000">&nbsp;</div>')
    return format_html(
        '<div class="drag handle" pk="{}" order="{}">&nbsp;</div>',
        provider.pk,
        provider.route_position + 1,
    )


_drag_handle.short_description = "drag"


@admin.register(Provider)
class ProviderAdmin(
    ConfigChangeEventsMixin, ActionPermissionMixin, SortableAdminMixin, admin.ModelAdmin
):
    form = ProviderAdminForm

    class Media(ScreenMedia):
        js = ["providers_app/provider_list.js"]

    list_display = (
        "_reorder_",  # sortable2's drag handle
        "position",  # the number in the route, and up/down buttons for the keyboard
        "name",
        "kind_short",
        "model_and_routes",
        "enabled",
        "breaker_state",
        "open_until",
        "cooldown",
        "health",
        "timeout",
        "attempts",
    )
    list_display_links = ("name",)
    list_filter = ("enabled", "kind")
    search_fields = ("name", "model", "base_url")
    list_per_page = 500  # one page, so drag and drop always sees every provider
    readonly_fields = (
        "breaker_summary",
        "capability_summary",
        "continuation_summary",
        "created_at",
        "updated_at",
    )
    actions = (
        "action_health_check",
        "action_reset",
        "action_force_open",
        "action_force_closed",
        "action_never_trip",
        "action_provider_enable",
        "action_provider_disable",
    )
    fieldsets = (
        (None, {"fields": ("name", "kind", "base_url", "model", "api_key_env", "enabled")}),
        ("Per request", {"fields": ("timeout_s", "max_attempts", "context_window", "extra")}),
        (
            "Prices (US dollars per million tokens)",
            {
                "fields": (
                    "price_input_per_mtok",
                    "price_cached_input_per_mtok",
                    "price_output_per_mtok",
                )
            },
        ),
        (
            "Breaker overrides (empty: the FALLBACK_BREAKER_* default)",
            {
                "classes": ("collapse",),
                "fields": BREAKER_OVERRIDE_FIELDS,
            },
        ),
        (
            "Capabilities (a request needing one skips providers without it)",
            {
                "fields": (
                    "supports_tools",
                    "supports_structured_output",
                    "supports_images",
                    "continuation",
                    "continuation_summary",
                    "capability_summary",
                )
            },
        ),
        ("Breaker state (read-only)", {"fields": ("breaker_summary",)}),
        (None, {"fields": ("created_at", "updated_at")}),
    )

    def __init__(self, model, admin_site):
        super().__init__(model, admin_site)
        # Sortable2 sorts by a model field; here the order is the shown route's,
        # annotated on each row (ProviderQuerySet.in_route_order).
        self.default_order_field = "route_position"
        self._reorder_ = MethodType(_drag_handle, self)

    def get_queryset(self, request):
        route = self.shown_route(request)
        providers = super().get_queryset(request)
        if route is None:  # the implicit route: every provider, in the order added
            providers = providers.annotate(
                route_position=Window(RowNumber(), order_by=F("id").asc()) - 1
            )
        else:
            providers = providers.in_route_order(route.pk)
        return (
            providers.annotate(shown_route_name=Value(route.name if route else ""))
            .select_related("breaker", "health_schedule")
            .prefetch_related("routes")
        )

    def get_list_display(self, request):
        # Not sortable2's: it adds its own handle column when the model has no
        # order field; this list names the handle (`_reorder_`) itself.
        return admin.ModelAdmin.get_list_display(self, request)

    def get_ordering(self, request):
        # Only this list has the annotation; other screens (filters, autocomplete
        # of the history pages) list providers as added.
        if getattr(request, "_provider_list_by_route", False):
            return [F("route_position").asc(nulls_last=True), "id"]
        return ["id"]

    # -- the route whose order the list shows ------------------------------------

    def shown_route(self, request) -> Route | None:
        """The route named by ?route=, else the default route, else the first one;
        None while no route exists (the implicit route: every provider, as added)."""
        if not hasattr(request, "_shown_route"):
            name = request.GET.get(ROUTE_PARAM)
            routes = Route.objects.order_by("-is_default", "name")
            request._shown_route = (name and routes.filter(name=name).first()) or routes.first()
        return request._shown_route

    def _route_query(self, request) -> str:
        route = self.shown_route(request)
        return "?" + urlencode({ROUTE_PARAM: route.name}) if route else ""

    def changelist_view(self, request, extra_context=None):
        route = self.shown_route(request)
        request._provider_list_by_route = True
        if ROUTE_PARAM in request.GET:
            # Not a field filter: the ChangeList must not see it.
            request.GET = request.GET.copy()
            del request.GET[ROUTE_PARAM]
        extra_context = {
            **(extra_context or {}),
            "shown_route": route,
            "shown_route_name": route.name if route else IMPLICIT_ROUTE,
            "route_choices": list(Route.objects.order_by("-is_default", "name")),
            "route_param": ROUTE_PARAM,
            "may_reorder": self.has_reorder_permission(request),
            "route_url": reverse(
                f"{self.admin_site.name}:providers_app_route_change", args=[route.pk]
            )
            if route
            else "",
        }
        return super().changelist_view(request, extra_context)

    def save_model(self, request, obj, form, change):
        # Not sortable2's (it numbers a model field): a new provider joins the
        # default route at its end, so it serves, last, like the ones before it.
        admin.ModelAdmin.save_model(self, request, obj, form, change)
        if not change:
            route_default_append(provider=obj)

    def get_update_url(self, request):
        return super().get_update_url(request) + self._route_query(request)

    def get_actions(self, request):
        # Sortable2's move-to-page actions shift rows with F()+1, which a unique
        # priority refuses; with one page they have no use anyway.
        actions = super().get_actions(request)
        for name in [a for a in actions if a.startswith("move_to_")]:
            del actions[name]
        return actions

    # -- permissions -------------------------------------------------------------

    def has_operate_permission(self, request) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.operate_provider")

    def has_reorder_permission(self, request) -> bool:
        # One order, one permission: the route's, on this page and the route's own.
        return request.user.has_perm(f"{self.opts.app_label}.reorder_route")

    def update_order(self, request):
        """Sortable2's drag-and-drop endpoint (?route=NAME: the route shown),
        through the audited route reorder; the confirmation is a message the list
        shows once it reloads."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_reorder_permission(request):
            return HttpResponseForbidden("You may not reorder the providers of a route.")
        try:
            items = json.loads(request.body)["updatedItems"]
            positions = {int(pk): int(rank) for pk, rank in items}
        except (ValueError, KeyError, TypeError):
            return HttpResponseBadRequest('Expected {"updatedItems": [[pk, position], ...]}.')
        try:
            route, order = route_reorder(
                route=self.shown_route(request), positions=positions, actor=request.user,
                request_id=request_id_of(request),
            )  # fmt: skip
        except RouteOrderError as error:
            message = f"The new order was not saved: {error}"
            self.message_user(request, message, messages.ERROR)
            return HttpResponseBadRequest(message)
        self._confirm_order(request, route, order)
        return HttpResponse(f"Updated {len(positions)} items")

    def move_view(self, request, object_id: str, direction: str):
        """The keyboard way to reorder: the up/down buttons of a row post here."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_reorder_permission(request):
            raise PermissionDenied
        provider = get_object_or_404(Provider, pk=object_id)
        steps = {"up": -1, "down": 1}.get(direction)
        if steps is None:
            raise Http404(f"Unknown direction {direction!r}")
        try:
            route, order = route_move(
                route=self.shown_route(request), provider_id=provider.pk, steps=steps,
                actor=request.user, request_id=request_id_of(request),
            )  # fmt: skip
        except RouteOrderError as error:
            self.message_user(request, f"Nothing was moved: {error}", messages.ERROR)
            route = self.shown_route(request)
        else:
            self._confirm_order(request, route, order)
        changelist = reverse(f"{self.admin_site.name}:providers_app_provider_changelist")
        query = "?" + urlencode({ROUTE_PARAM: route.name}) if route else ""
        return HttpResponseRedirect(f"{changelist}{query}#move-{provider.pk}-{direction}")

    def _confirm_order(self, request, route: Route, order: list[str]) -> None:
        listed = ", ".join(f"{rank}. {name}" for rank, name in enumerate(order, start=1))
        self.message_user(
            request, f"New order of route {route.name} saved: {listed}.", messages.SUCCESS
        )

    # -- columns ---------------------------------------------------------------

    @admin.display(description="order")
    def position(self, provider: Provider) -> str:
        if provider.route_position is None:
            return format_html('<span class="position not-in-route">{}</span>', "not in route")
        # Buttons of the list's own form (which carries the CSRF token), posting
        # to move_view: reachable with Tab, pressed with Enter or Space.
        url_name = f"{self.admin_site.name}:providers_app_provider_move"
        route_name = provider.shown_route_name
        query = "?" + urlencode({ROUTE_PARAM: route_name}) if route_name else ""
        return format_html(
            '<span class="position"><span class="number">{number}</span> '
            '<button type="submit" class="move-button" id="move-{pk}-up" formaction="{up}" '
            'aria-label="Move {name} up" title="Move up">&uarr;</button>'
            '<button type="submit" class="move-button" id="move-{pk}-down" formaction="{down}" '
            'aria-label="Move {name} down" title="Move down">&darr;</button></span>',
            number=provider.route_position + 1,
            pk=provider.pk,
            name=provider.name,
            up=reverse(url_name, args=[provider.pk, "up"]) + query,
            down=reverse(url_name, args=[provider.pk, "down"]) + query,
        )

    @admin.display(description="kind", ordering="kind")
    def kind_short(self, provider: Provider) -> str:
        # The choice labels carry examples ("OpenAI-compatible (vLLM, Groq, ...)")
        # that are right on the form and too wide for a column.
        return provider.get_kind_display().split(" (")[0]

    @admin.display(description="timeout", ordering="timeout_s")
    def timeout(self, provider: Provider) -> str:
        return f"{provider.timeout_s:g} s"

    @admin.display(description="attempts", ordering="max_attempts")
    def attempts(self, provider: Provider) -> int:
        return provider.max_attempts

    @admin.display(description="breaker")
    def breaker_state(self, provider: Provider) -> str:
        return state_badge(provider.breaker)

    @admin.display(description="model, routes", ordering="model")
    def model_and_routes(self, provider: Provider) -> str:
        # Under the model rather than a column of their own: at 1366 px the list
        # has no room for another column.
        names = ", ".join(sorted(route.name for route in provider.routes.all()))
        return format_html(
            '{}<small class="routes">{}</small>', provider.model, f"routes: {names or '-'}"
        )

    @admin.display(description="open until")
    def open_until(self, provider: Provider):
        breaker = provider.breaker
        open_states = (BreakerState.State.OPEN, BreakerState.State.FORCED_OPEN)
        if breaker.state not in open_states:
            return "-"
        if breaker.open_until is None:
            return "until reset"
        return moment_html(breaker.open_until)

    @admin.display(description="cooldown until")
    def cooldown(self, provider: Provider):
        breaker = provider.breaker
        if breaker.cooldown_until and breaker.cooldown_until > get_clock().now():
            return moment_html(breaker.cooldown_until)
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

    @admin.display(description="continuation in force")
    def continuation_summary(self, provider: Provider) -> str:
        """The dialect in force and, when a refusal switched it off, what was refused:
        setting the field above back (to the default or a dialect) switches it on."""
        if not provider.kind or not provider.model:
            return "-"
        dialect = provider_continuation(provider=provider)
        origin = "default" if not provider.continuation else "set here"
        switched = provider_last_continuation_off(provider_id=provider.pk) if provider.pk else None
        if switched is None or provider.continuation != "none":
            return f"{dialect} ({origin})"
        return format_html(
            '{} <span class="continuation-off">switched off automatically at {} after: '
            "<q>{}</q>. Choose the default or a dialect above to switch it back.</span>",
            dialect,
            moment_html(switched.created_at, now=get_clock().now()),
            switched.detail,
        )

    @admin.display(description="breaker")
    def breaker_summary(self, provider: Provider) -> str:
        if provider.pk is None:  # the add form: the breaker comes with the saved provider
            return "-"
        breaker = provider.breaker
        now = get_clock().now()
        return format_html(
            '<dl class="breaker-summary">'
            "<dt>state</dt><dd>{}</dd>"
            "<dt>opened at</dt><dd>{}</dd>"
            "<dt>open until</dt><dd>{}</dd>"
            "<dt>cooling down until</dt><dd>{}</dd>"
            "<dt>consecutive failures</dt><dd>{}</dd>"
            "<dt>generation</dt><dd>{}</dd>"
            "<dt>last error</dt><dd>{}</dd></dl>",
            state_badge(breaker),
            moment_html(breaker.opened_at, now=now),
            moment_html(breaker.open_until, now=now),
            # an expired cooldown is none: "-", not "until 23:38:58 (4 min ago)"
            moment_html(
                breaker.cooldown_until if _active(breaker.cooldown_until, now) else None, now=now
            ),
            breaker.consecutive_failures,
            breaker.generation,
            breaker.last_error or "-",
        )

    # -- operator actions on the list --------------------------------------------

    @admin.action(description="Run a health check now", permissions=["operate"])
    def action_health_check(self, request, queryset):
        for provider in queryset:
            self._health_check(request, provider)

    @admin.action(description="Reset breaker (closed, clean slate)", permissions=["operate"])
    def action_reset(self, request, queryset):
        self._operate_all(request, queryset, "reset")

    @admin.action(description="Force breaker open until… (maintenance)", permissions=["operate"])
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

    @admin.action(description="Force breaker closed", permissions=["operate"])
    def action_force_closed(self, request, queryset):
        self._operate_all(request, queryset, "force_closed")

    @admin.action(description="Breaker: never trip", permissions=["operate"])
    def action_never_trip(self, request, queryset):
        self._operate_all(request, queryset, "never_trip")

    @admin.action(description="Enable selected providers", permissions=["operate"])
    def action_provider_enable(self, request, queryset):
        self._operate_all(request, queryset, "provider_enable")

    @admin.action(description="Disable selected providers", permissions=["operate"])
    def action_provider_disable(self, request, queryset):
        self._operate_all(request, queryset, "provider_disable")

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
            path(
                "<path:object_id>/move/<str:direction>/",
                self.admin_site.admin_view(self.move_view),
                name="{}_{}_move".format(*info),
            ),
        ]
        return custom + super().get_urls()

    def change_view(self, request, object_id, form_url="", extra_context=None):
        provider = self.get_object(request, object_id)
        offered = offered_operations(provider) if provider else []
        extra_context = {
            **(extra_context or {}),
            "operations": [(name, OPERATIONS[name][0]) for name in offered],
            "offer_force_open": provider is None
            or provider.breaker.state != BreakerState.State.FORCED_OPEN,
            "can_operate": self.has_operate_permission(request),
            "dashboard_url": reverse(f"{self.admin_site.name}:providers_app_dashboard_changelist"),
            "provider_status": provider
            and provider_page_status(
                provider, now=get_clock().now(), admin_site_name=self.admin_site.name
            ),
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
        if not self.has_operate_permission(request):
            raise PermissionDenied
        return get_object_or_404(Provider, pk=object_id)

    def _change_url(self, provider: Provider) -> str:
        return reverse(f"{self.admin_site.name}:providers_app_provider_change", args=[provider.pk])

    def _operate_all(self, request, queryset, action: str) -> None:
        for provider in queryset:
            self._operate(request, provider, action)

    def _operate(self, request, provider: Provider, action: str) -> None:
        label, call = OPERATIONS[action]
        result = call(
            provider_id=provider.pk, actor=request.user, request_id=request_id_of(request)
        )
        self._record(request, provider, label, result)

    def _force_open(self, request, provider: Provider, until: datetime | None) -> None:
        result = operator.operator_breaker_force_open(
            provider_id=provider.pk, until=until, actor=request.user,
            request_id=request_id_of(request),
        )  # fmt: skip
        self._record(request, provider, "Force breaker open", result)

    def _health_check(self, request, provider: Provider) -> None:
        result, report = operator.operator_health_check(
            provider_id=provider.pk, actor=request.user, request_id=request_id_of(request)
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


def _active(until, now) -> bool:
    return until is not None and until > now
