"""The dashboard's admin entry: a proxy of the event log, so the admin lists the
page on its index and asks the event log's permissions."""

from ..models import FailoverEvent


class Dashboard(FailoverEvent):
    """No data of its own: gives the admin a failover dashboard page at
    `admin/providers_app/dashboard/`, listed on the admin index."""

    class Meta:
        app_label = "providers_app"  # migration 0002 made it there; the URL stays
        proxy = True
        verbose_name = "failover dashboard"
        verbose_name_plural = "failover dashboard"
