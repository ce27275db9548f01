"""The WSGI layer in front of Django: liveness answered before Django, and
requests that leave no reference cycles for the garbage collector."""

import gc
import json
import os
import subprocess
import sys

import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.test import RequestFactory

from fallbackproject.liveness import with_liveness
from fallbackproject.wsgi_requests import CycleFreeWSGIHandler


def _django_must_not_run(environ, start_response):
    raise AssertionError("Django was called for liveness")


def _call(app, method: str, path: str) -> tuple[str, dict, bytes]:
    seen = {}

    def start_response(status, headers):
        seen["status"], seen["headers"] = status, dict(headers)

    environ = {"REQUEST_METHOD": method, "PATH_INFO": path}
    body = b"".join(app(environ, start_response))
    return seen["status"], seen["headers"], body


def test_liveness_answers_without_django_or_the_database():
    status, headers, body = _call(with_liveness(_django_must_not_run), "GET", "/healthz")
    assert status == "200 OK"
    assert json.loads(body) == {"status": "ok"}
    assert headers["Content-Type"] == "application/json"
    assert headers["Content-Length"] == str(len(body))


def test_liveness_head_has_no_body_and_other_methods_are_refused():
    app = with_liveness(_django_must_not_run)
    status, _, body = _call(app, "HEAD", "/healthz")
    assert (status, body) == ("200 OK", b"")
    status, headers, _ = _call(app, "POST", "/healthz")
    assert status == "405 Method Not Allowed"
    assert headers["Allow"] == "GET, HEAD"


@pytest.mark.parametrize("path", ["/healthz/", "/v1/chat/completions", "/"])
def test_every_other_path_goes_to_django(path):
    calls = []

    def django_app(environ, start_response):
        calls.append(environ["PATH_INFO"])
        start_response("204 No Content", [])
        return [b""]

    assert _call(with_liveness(django_app), "GET", path)[0] == "204 No Content"
    assert calls == [path]


def _unreachable_after_requests(handler: WSGIHandler, n: int) -> int:
    """Objects the cyclic collector finds after n requests through the project's
    middleware (sessions, auth, messages), each response read and closed."""

    def one_request():
        environ = RequestFactory().get("/healthz").environ
        response = handler(environ, lambda status, headers: None)
        b"".join(response)
        response.close()

    one_request()  # lazy loading (URLconf, templates) is not per-request garbage
    gc.collect()
    gc.disable()
    try:
        for _ in range(n):
            one_request()
        return gc.collect()
    finally:
        gc.enable()


@pytest.mark.django_db
def test_a_closed_request_leaves_no_cycles_where_djangos_stock_handler_does():
    stock = _unreachable_after_requests(WSGIHandler(), 5)
    ours = _unreachable_after_requests(CycleFreeWSGIHandler(), 5)
    assert stock >= 5 * 10  # the middleware's request <-> user/messages cycles
    assert ours == 0


def test_the_served_application_is_the_cycle_free_handler_behind_liveness_and_frozen():
    """In a fresh interpreter, as gunicorn loads it (importing it here would switch
    on the counters' background flush for the rest of the test session)."""
    probe = (
        "import gc, json\n"
        "from fallbackproject import wsgi\n"
        "from fallbackproject.wsgi_requests import CycleFreeWSGIHandler\n"
        "out = []\n"
        "body = wsgi.application({'REQUEST_METHOD': 'GET', 'PATH_INFO': '/healthz'},"
        " lambda status, headers: out.append(status))\n"
        "print(json.dumps([isinstance(wsgi.django_application, CycleFreeWSGIHandler),"
        " out[0], b''.join(body).decode(), gc.get_freeze_count()]))\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "fallbackproject.settings.test"}
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True
    )
    cycle_free, status, body, frozen = json.loads(done.stdout.strip().splitlines()[-1])
    assert cycle_free
    assert (status, json.loads(body)) == ("200 OK", {"status": "ok"})
    assert frozen > 10_000  # Django and the project, out of every full collection
