"""The WSGI app as the project served it before the serving fixes of issue 11's
/healthz item: Django's stock handler, /healthz routed through Django's
middleware, no garbage-collector freeze. Only `bench/concurrency.py
--compare-stock` serves it, to measure the difference in the same run."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fallbackproject.settings.production")

application = get_wsgi_application()

from providers_app.engine.counters import flush_in_background  # noqa: E402

flush_in_background()
