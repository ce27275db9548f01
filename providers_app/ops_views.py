"""Operations surfaces: `GET /metrics` (Prometheus text).

The dashboard is its own package, `providers_app.dashboard`."""

import hmac

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client.exposition import choose_encoder

from .conf import get_setting
from .engine import metrics as metrics_service


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
