"""The dashboard is an app of its own only so that Django finds its templates,
static files and admin module inside its package; its one (proxy) model keeps
the `providers_app` label."""

from django.apps import AppConfig


class DashboardConfig(AppConfig):
    name = "providers_app.dashboard"
    label = "providers_dashboard"
    verbose_name = "Failover dashboard"
