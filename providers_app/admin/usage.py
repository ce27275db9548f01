"""The "Usage and cost" page: tokens and spend by provider, route and key, and the
failover cost, over a chosen range of days. Read-only, for whoever may read the
failover history (the dashboard's rule)."""

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.urls import path

from .. import usage_views
from ..models import UsageReport


@admin.register(UsageReport)
class UsageReportAdmin(admin.ModelAdmin):
    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.has_perm("providers_app.view_failoverevent") or request.user.has_perm(
            "providers_app.change_failoverevent"
        )

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
                name="providers_app_usagereport_changelist",
            )
        ]

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_permission(request):
            raise PermissionDenied
        return usage_views.usage_page(request, admin_site=self.admin_site, opts=self.opts)
