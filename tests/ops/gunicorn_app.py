"""The WSGI app of the multiprocess metrics test: the project's Django app, plus
`/_test/work?sleep=S`, which counts one request in whichever worker serves it
(through the real metric objects) and answers with that worker's pid."""

import os
import time
from urllib.parse import parse_qs

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fallbackproject.settings.test")

from django.core.wsgi import get_wsgi_application

django_application = get_wsgi_application()


def application(environ, start_response):
    if environ.get("PATH_INFO") != "/_test/work":
        return django_application(environ, start_response)
    from providers_app.engine import metrics

    query = parse_qs(environ.get("QUERY_STRING", ""))
    time.sleep(float(query.get("sleep", ["0"])[0]))  # keep this worker busy
    metrics.REQUESTS.labels(provider="mp", outcome="success", route="chat").inc()
    metrics.ATTEMPT_LATENCY.labels("mp", "success").observe(0.2)
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
