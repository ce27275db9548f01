"""The dashboard page, and its live fragment (the same charts, fetched every few
seconds by `static/dashboard/live.js` and swapped in without a reload)."""

from django.contrib.admin import AdminSite
from django.db.models.options import Options
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse

from ..engine.clock import get_clock
from .charts import dashboard_charts
from .reads import RANGES, dashboard_data, range_for


def _context(request: HttpRequest, admin_site: AdminSite) -> dict:
    range_key = range_for(request.GET.get("range")).key
    dashboard = dashboard_charts(dashboard_data(range_key=range_key, now=get_clock().now()))
    return {
        "dashboard": dashboard,
        "range_key": range_key,
        "ranges": [(key, chosen.label) for key, chosen in RANGES.items()],
        "events_url": reverse(f"{admin_site.name}:providers_app_failoverevent_changelist"),
        "providers_url": reverse(f"{admin_site.name}:providers_app_provider_changelist"),
        "live_url": reverse(f"{admin_site.name}:providers_app_dashboard_live"),
    }


def dashboard_page(
    request: HttpRequest, *, admin_site: AdminSite, opts: Options
) -> TemplateResponse:
    """The page, on the range `?range=` names (the default for anything else)."""
    context = {
        **admin_site.each_context(request),
        "title": "Failover dashboard",
        "opts": opts,
        **_context(request, admin_site),
    }
    return TemplateResponse(request, "dashboard/page.html", context)


def dashboard_live(request: HttpRequest, *, admin_site: AdminSite) -> TemplateResponse:
    """The page's body alone (figures and charts), for the page to swap in."""
    response = TemplateResponse(request, "dashboard/body.html", _context(request, admin_site))
    response["Cache-Control"] = "no-store"
    return response
