"""Requests that free themselves when their response closes.

Django's middleware ties every request into reference cycles: the
authentication middleware's lazy `request.user` and `request.auser` hold the
request, and the messages middleware's storage holds it too. Objects in a cycle
are freed only by Python's cyclic garbage collector, never by reference
counting, so each request left about 54 objects (with the server's socket
reader, buffers and environ hanging off them) for the collector. With 256
chats in flight that is some 30 000 objects every few seconds, and each full
collection stopped every thread of the worker for 60-160 ms: /healthz and the
streams all waited (docs/operations.md, "Serving", has the measurements).

Django closes the request when the response closes (after the last byte of a
stream, `HttpRequest.close` among the response's closers); nothing reads the
request afterwards, so here closing also drops its attributes, which breaks the
cycles and lets reference counting free the request at once.
"""

from django.core.handlers.wsgi import WSGIHandler, WSGIRequest


class CycleFreeRequest(WSGIRequest):
    def close(self) -> None:
        try:
            super().close()  # uploaded files, as Django does
        finally:
            vars(self).clear()


class CycleFreeWSGIHandler(WSGIHandler):
    request_class = CycleFreeRequest
