"""The dashboard's admin entry: listed on the admin index, readable by whoever
may read the event log; its URLs come from `dashboard.urls`."""

from functools import wraps

from django.contrib import admin
from django.core.exceptions import PermissionDenied

from .models import Dashboard
from .urls import admin_urlpatterns


@admin.register(Dashboard)
class DashboardAdmin(admin.ModelAdmin):
    """Charts of the failover history: one read-only page, for whoever may read events."""

    def has_view_permission(self, request, obj=None) -> bool:
        # Whoever may read the events (view, or change, as Django's own check).
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
        return admin_urlpatterns(self)

    def guarded(self, view):
        """The admin's login, then the event log's view permission (403 without)."""

        @wraps(view)
        def checked(request, *args, **kwargs):
            if not self.has_view_permission(request):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        return self.admin_site.admin_view(checked)
