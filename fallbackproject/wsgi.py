"""WSGI entry point (gunicorn fallbackproject.wsgi; runserver and run_demo load it too)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fallbackproject.settings.production")

application = get_wsgi_application()

# A serving process writes its buffered success counters on a timer too, so the
# last answers before a quiet spell show in /api/status without another request.
from providers_app.engine.counters import flush_in_background  # noqa: E402

flush_in_background()
