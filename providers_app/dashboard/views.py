"""The dashboard page, and its live fragment (the same body, fetched every few
seconds by `static/dashboard/live.js` and swapped in without a reload).

The body is a list of panels (`PANELS`), drawn in order: a panel is a template
under `templates/dashboard/panels/`, given the page's context plus what its own
`context` function adds. Another panel (usage and spend, say) is one more entry.
"""

from collections.abc import Callable
from dataclasses import dataclass

from django.contrib.admin import AdminSite
from django.db.models.options import Options
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse

from ..engine.clock import get_clock
from ..selectors.call_stats import DEFINITIONS
from ..selectors.usage import usage_report
from .charts import dashboard_charts
from .reads import RANGES, Window, dashboard_data, range_for

# Seconds between two refreshes of the body (the page says so).
REFRESH_S = 5


@dataclass(frozen=True)
class Panel:
    key: str  # the section's id
    template: str
    # extra context: (request, the window drawn) -> dict; None: the page's context only
    context: Callable[[HttpRequest, Window], dict] | None = None


def _usage(request: HttpRequest, window: Window) -> dict:
    """Tokens and spend of the days the window touches: the ledger counts per day."""
    first, last = window.start.date(), window.end.date()
    return {"usage": usage_report(first_day=first, last_day=last)}


PANELS: list[Panel] = [
    Panel("requests", "dashboard/panels/requests.html"),
    Panel("answers", "dashboard/panels/answers.html"),
    Panel("breaker", "dashboard/panels/breaker.html"),
    Panel("failovers", "dashboard/panels/failovers.html"),
    Panel("providers", "dashboard/panels/providers.html"),
    Panel("success-rate", "dashboard/panels/success_rate.html"),
    Panel("latency", "dashboard/panels/latency.html"),
    Panel("routes", "dashboard/panels/routes.html"),
    Panel("usage", "dashboard/panels/usage.html", _usage),
]


def _width(request: HttpRequest) -> int | None:
    """The width the browser has for the charts (`?width=`, CSS px), if it said."""
    try:
        return int(request.GET.get("width", ""))
    except ValueError:
        return None


def _context(request: HttpRequest, admin_site: AdminSite) -> dict:
    range_key = range_for(request.GET.get("range")).key
    data = dashboard_data(range_key=range_key, now=get_clock().now())
    dashboard = dashboard_charts(data, width=_width(request))
    panels = []
    for panel in PANELS:
        extra = panel.context(request, data.window) if panel.context else {}
        panels.append((panel, extra))
    return {
        "dashboard": dashboard,
        "definitions": DEFINITIONS,
        "panels": panels,
        "range_key": range_key,
        "ranges": [(key, chosen.label) for key, chosen in RANGES.items()],
        "refresh_s": REFRESH_S,
        "events_url": reverse(f"{admin_site.name}:providers_app_failoverevent_changelist"),
        "providers_url": reverse(f"{admin_site.name}:providers_app_provider_changelist"),
        "live_url": reverse(f"{admin_site.name}:providers_app_dashboard_live"),
        "usage_url": reverse(f"{admin_site.name}:providers_app_usagereport_changelist"),
    }


def dashboard_page(
    request: HttpRequest, *, admin_site: AdminSite, opts: Options
) -> TemplateResponse:
    """The page, on the range `?range=` names (the live 15 minutes for anything else)."""
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
