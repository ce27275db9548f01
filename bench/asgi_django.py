"""The project under an ASGI server, for bench/concurrency.py --asgi: Django's own
ASGI handler over the same settings, views and database as the WSGI app. The
views are the project's synchronous ones (Django runs each in a thread of its
own); streaming responses are synchronous iterators, which Django's ASGI
handler consumes in a thread before sending. It measures the server, not a
port of the streaming path to async views (docs/operations.md, "Serving")."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fallbackproject.settings.production")

from django.core.asgi import get_asgi_application

application = get_asgi_application()
