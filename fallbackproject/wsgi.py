"""WSGI entry point (gunicorn fallbackproject.wsgi; runserver and run_demo load it too).

`application` answers GET /healthz itself (fallbackproject/liveness.py), admits
chats to the worker's slots and answers GET /readyz (fallbackproject/admission.py),
and hands everything else to Django; `django_application` is Django alone (bench/concurrency.py
`--app django` measures the difference).
"""

import gc
import os

import django

from fallbackproject.admission import with_admission
from fallbackproject.capacity import Slots
from fallbackproject.liveness import with_liveness
from fallbackproject.serving import web_queue, web_queue_s, web_threads
from fallbackproject.wsgi_requests import CycleFreeWSGIHandler

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fallbackproject.settings.production")

# What django.core.wsgi.get_wsgi_application() does, with requests that break
# their reference cycles when the response closes (fallbackproject/wsgi_requests.py).
django.setup(set_prefix=False)

django_application = CycleFreeWSGIHandler()
chat_slots = Slots(web_threads(), web_queue(), web_queue_s())
application = with_liveness(with_admission(django_application, chat_slots))

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
