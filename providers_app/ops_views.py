"""Operations surfaces: `GET /metrics` (Prometheus text) and the admin's failover dashboard."""

import hmac

from django.contrib.admin import AdminSite
from django.db.models.options import Options
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.http import require_GET
from prometheus_client.exposition import choose_encoder

from .admin_charts import dashboard_charts
from .conf import get_setting
from .engine import metrics as metrics_service
from .engine.clock import get_clock
from .selectors.dashboard import RANGES, dashboard_data, range_for


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Every process's counters (multiprocess mode under gunicorn) plus the breaker
    gauges read from the database. It names providers: with FALLBACK_METRICS_TOKEN
    set, only a scraper sending `Authorization: Bearer <token>` gets them."""
    if not _scraper_authorised(request):
        response = HttpResponse("Unauthorized: send the metrics bearer token.\n", status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        response["Content-Type"] = "text/plain; charset=utf-8"
        return response
    # Prometheus text by default; OpenMetrics when the scraper asks for it.
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encoder(metrics_service.scrape_registry()), content_type=content_type)


def _scraper_authorised(request: HttpRequest) -> bool:
    token = get_setting("METRICS_TOKEN")
    if not token:
        return True
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    # Constant-time, so the token cannot be guessed a character at a time.
    return scheme.lower() == "bearer" and hmac.compare_digest(
        presented.strip().encode(), token.encode()
    )


def dashboard_page(
    request: HttpRequest, *, admin_site: AdminSite, opts: Options
) -> TemplateResponse:
    """Charts of the last hour, 6 hours, 24 hours (default) or 7 days
    (`?range=1h|6h|24h|7d`), rendered as inline SVG."""
    range_key = range_for(request.GET.get("range")).key
    dashboard = dashboard_charts(dashboard_data(range_key=range_key, now=get_clock().now()))
    context = {
        **admin_site.each_context(request),
        "title": "Failover dashboard",
        "opts": opts,
        "dashboard": dashboard,
        "range_key": range_key,
        "ranges": [(key, chosen.label) for key, chosen in RANGES.items()],
        "events_url": reverse(f"{admin_site.name}:providers_app_failoverevent_changelist"),
        "providers_url": reverse(f"{admin_site.name}:providers_app_provider_changelist"),
    }
    return TemplateResponse(request, "admin/providers_app/dashboard.html", context)
