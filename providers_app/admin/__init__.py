"""Admin: providers in drag-and-drop order with operator actions, routes, client keys,
read-only history (one module each; importing this package registers them
all). The failover dashboard registers its own entry (`providers_app.dashboard.admin`).

Every view and action asks a Django permission (who holds which is written down
in docs/operations.md "Authorisation"): operator actions need
`providers_app.operate_provider`, reordering a route (drag and drop, ↑/↓) needs `reorder_route`,
revoking a client key needs `revoke_clientkey`. An action the user may not run
answers 403 and changes nothing, rather than being silently ignored.
"""

from django.contrib import admin
from django.urls import reverse_lazy

from .alerts import AlertChannelAdmin, AlertIncidentAdmin
from .client_keys import ClientKeyAdmin
from .history import FailoverEventAdmin, HealthCheckResultAdmin
from .providers import OPERATIONS, ProviderAdmin, offered_operations
from .routes import RouteAdmin
from .traces import RequestTraceAdmin
from .usage import UsageReportAdmin

PRODUCT_NAME = "LLM fallback"

# Branding: every admin page names the product, and "View site" opens the chat page.
admin.site.site_header = f"{PRODUCT_NAME} administration"
admin.site.site_title = f"{PRODUCT_NAME} admin"
admin.site.index_title = "Providers, breakers and failover history"
admin.site.site_url = reverse_lazy("chat")
# The app list in a sidebar costs a third of a 1366 px screen that the provider
# list and the event log need for their columns; the index page lists the apps.
admin.site.enable_nav_sidebar = False

__all__ = [
    "OPERATIONS",
    "AlertChannelAdmin",
    "AlertIncidentAdmin",
    "ClientKeyAdmin",
    "FailoverEventAdmin",
    "HealthCheckResultAdmin",
    "ProviderAdmin",
    "RequestTraceAdmin",
    "RouteAdmin",
    "UsageReportAdmin",
    "offered_operations",
]
