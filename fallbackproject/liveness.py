"""Liveness answered before Django: `GET /healthz` is a fixed 200 from this WSGI
wrapper, and every other request goes to the Django application unchanged.

Liveness says "this process serves requests": it must not depend on Django's
middleware, URL routing or the database, and under load it should cost the
fewest bytecodes possible, because each request thread of a busy worker waits
for the interpreter lock between its steps (docs/operations.md, "Serving").
Django still routes /healthz (providers_app/views.py) for runserver and tests;
the answer is the same JSON.
"""

from collections.abc import Callable, Iterable

LIVENESS_PATH = "/healthz"
_BODY = b'{"status": "ok"}'
_OK_HEADERS = [
    ("Content-Type", "application/json"),
    ("Content-Length", str(len(_BODY))),
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
]
_NOT_ALLOWED_HEADERS = [("Allow", "GET, HEAD"), ("Content-Length", "0")]


def with_liveness(app: Callable) -> Callable:
    """`app` with GET/HEAD /healthz answered in place (other methods: 405)."""

    def application(environ: dict, start_response: Callable) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != LIVENESS_PATH:
            return app(environ, start_response)
        method = environ.get("REQUEST_METHOD")
        if method not in ("GET", "HEAD"):
            start_response("405 Method Not Allowed", _NOT_ALLOWED_HEADERS)
            return [b""]
        start_response("200 OK", _OK_HEADERS)
        return [b"" if method == "HEAD" else _BODY]

    return application
