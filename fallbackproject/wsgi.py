"""WSGI entry point (gunicorn fallbackproject.wsgi; runserver and run_demo load it too).

`application` answers GET /healthz itself (fallbackproject/liveness.py) and hands
everything else to Django; `django_application` is Django alone (bench/concurrency.py
`--app django` measures the difference).
"""

import gc
import os

import django

from fallbackproject.liveness import with_liveness
from fallbackproject.wsgi_requests import CycleFreeWSGIHandler

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fallbackproject.settings.production")

# What django.core.wsgi.get_wsgi_application() does, with requests that break
# their reference cycles when the response closes (fallbackproject/wsgi_requests.py).
django.setup(set_prefix=False)

django_application = CycleFreeWSGIHandler()
application = with_liveness(django_application)

# A serving process writes its buffered success counters on a timer too, so the
# last answers before a quiet spell show in /api/status without another request.
from providers_app.engine.counters import flush_in_background  # noqa: E402

flush_in_background()

# Everything loaded so far (Django, the project, their modules: some 86 000
# objects) lives as long as the process. Freezing it takes it out of every
# later full garbage collection, which otherwise walks it all while every
# thread of the worker waits (docs/operations.md, "Serving").
gc.collect()
gc.freeze()
