"""URLs of the failover layer: the chat API and pages, and the operations endpoints."""

from django.urls import include, path

urlpatterns = [
    path("", include("providers_app.urls_api")),
    path("", include("providers_app.urls_ops")),
]
