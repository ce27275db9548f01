"""Client keys: created (shown once), limited to routes and fairness limits (editable,
audited), revoked."""

from django.contrib import admin
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.cache import patch_cache_control

from ..models import (
    ClientKey,
)
from ..services.client_keys import client_key_create, client_key_revoke, client_key_routes_set
from .common import ActionPermissionMixin

# Per-key fairness limits (providers_app/limits): empty means the FALLBACK_KEY_* default.
LIMIT_FIELDS = ("max_concurrent_requests", "requests_per_minute")


@admin.register(ClientKey)
class ClientKeyAdmin(ActionPermissionMixin, admin.ModelAdmin):
    """Keys are created (add permission) or revoked (revoke permission); their
    route limits and fairness limits can be changed later (change permission),
    audited: the admin's history (and, for routes, the operator log) name who
    changed what. The name and the key itself never change.

    A new key is shown once, on the page that answers the creating POST: it is
    not put in a message cookie, the session or the database (only its digest).
    """

    list_display = (
        "name",
        "prefix",
        "routes_allowed",
        "max_concurrent_requests",
        "requests_per_minute",
        "created_at",
        "last_used_at",
        "revoked_at",
    )
    fields = ("name", "routes", *LIMIT_FIELDS, "tokens_per_minute", "monthly_spend_limit_usd")
    filter_horizontal = ("routes",)

    def get_readonly_fields(self, request, obj=None):
        return ("name", "prefix", "created_at", "revoked_at") if obj else ()

    def get_fields(self, request, obj=None):
        if obj is None:
            return self.fields
        return ("name", "prefix", "routes", *LIMIT_FIELDS, "created_at", "revoked_at")

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("routes")

    @admin.display(description="routes")
    def routes_allowed(self, key: ClientKey) -> str:
        if not key.limited_to_routes:
            return "all"
        return ", ".join(route.name for route in key.routes.all()) or "none (routes deleted)"

    actions = ("revoke",)

    def has_revoke_permission(self, request) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.revoke_clientkey")

    def save_model(self, request, obj, form, change):
        if change:
            # The route limits change in save_related; the fairness limits here.
            changed = [field for field in LIMIT_FIELDS if field in form.changed_data]
            if changed:
                obj.save(update_fields=changed)
                request._client_key_limits_change = "; ".join(
                    f"{ClientKey._meta.get_field(f).verbose_name}: "
                    f"{form.initial.get(f) or 'default'} -> {getattr(obj, f) or 'default'}"
                    for f in changed
                )
            return
        created = client_key_create(
            name=obj.name,
            max_concurrent_requests=obj.max_concurrent_requests,
            requests_per_minute=obj.requests_per_minute,
        )
        obj.pk = created.client_key.pk
        # Only this request's response shows it (response_add).
        request._new_client_key = created.raw_key

    def save_related(self, request, form, formsets, change):
        # The limits go through the service, which keeps `limited_to_routes` and
        # writes the operator log line naming the acting user.
        change_line = client_key_routes_set(
            client_key=form.instance, routes=form.cleaned_data["routes"], actor=request.user
        )
        request._client_key_change = change_line

    def construct_change_message(self, request, form, formsets, add=False):
        if not add and hasattr(request, "_client_key_change"):
            # The admin history's entry: before -> after.
            limits = getattr(request, "_client_key_limits_change", "")
            return "; ".join(filter(None, [request._client_key_change, limits]))
        return super().construct_change_message(request, form, formsets, add)

    def response_add(self, request, obj, post_url_continue=None):
        raw_key = getattr(request, "_new_client_key", None)
        if raw_key is None:  # pragma: no cover - save_model always sets it
            return super().response_add(request, obj, post_url_continue)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Client key for {obj.name}",
            "opts": self.opts,
            "client_key": obj,
            "raw_key": raw_key,
            "changelist_url": reverse(f"{self.admin_site.name}:providers_app_clientkey_changelist"),
        }
        response = TemplateResponse(
            request, "admin/providers_app/clientkey/key_created.html", context
        )
        # Never kept by a browser or proxy cache: going back does not show it again.
        # (The admin adds never_cache's headers too; no-store is what matters.)
        patch_cache_control(response, no_store=True)
        return response

    @admin.action(description="Revoke selected keys", permissions=["revoke"])
    def revoke(self, request, queryset):
        revoked = 0
        for key in queryset:
            if key.revoked_at is None:
                client_key_revoke(client_key=key)
                self.log_change(request, key, "Revoked.")
                revoked += 1
        self.message_user(request, f"Revoked {revoked} key(s).")
