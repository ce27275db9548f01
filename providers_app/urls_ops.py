"""Operations endpoints: Prometheus metrics. (The dashboard's URLs: `dashboard/urls.py`.)"""

from django.urls import path

from . import ops_views

urlpatterns = [
    path("metrics", ops_views.metrics, name="metrics"),
]
