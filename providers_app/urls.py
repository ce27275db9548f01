"""URLs of the failover layer."""

from django.urls import path

from . import views

app_name = "providers_app"

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
]
