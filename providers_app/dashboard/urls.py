"""The dashboard's URLs, all of them: the page and its live fragment. They live
under the admin (`admin/providers_app/dashboard/`), behind its login and the
event log's view permission: `DashboardAdmin.get_urls` serves these."""

from django.urls import URLPattern, path

from . import views


def admin_urlpatterns(model_admin) -> list[URLPattern]:
    """The patterns, each view wrapped by `model_admin.guarded` (login, permission)."""
    site, opts = model_admin.admin_site, model_admin.opts

    def page(request):
        return views.dashboard_page(request, admin_site=site, opts=opts)

    def live(request):
        return views.dashboard_live(request, admin_site=site)

    return [
        path("", model_admin.guarded(page), name="providers_app_dashboard_changelist"),
        path("live/", model_admin.guarded(live), name="providers_app_dashboard_live"),
    ]
