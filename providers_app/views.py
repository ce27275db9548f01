"""HTTP surfaces: thin shells that parse, call a service and render."""

from django.http import JsonResponse
from django.views.decorators.http import require_GET


@require_GET
def healthz(request):
    """Liveness: the process answers; no database needed."""
    return JsonResponse({"status": "ok"})
