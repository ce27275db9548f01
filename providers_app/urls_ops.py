"""Operations endpoints: Prometheus metrics. (The dashboard lives in the admin.)"""

from django.urls import path

from . import ops_views

urlpatterns = [
    path("metrics", ops_views.metrics, name="metrics"),
]
