"""How many requests one web process holds at once: read by gunicorn.conf.py, by
the admission wrapper (fallbackproject/admission.py) and by the database
settings, so the thread count, the chat capacity and the connection pool all
come from the same numbers.

An LLM answer takes seconds and a stream minutes, and a request spends nearly
all of it waiting on the upstream socket: threads, not processes, are what a
machine needs many of. docs/operations.md ("Serving") says how to size them.

A worker has WEB_THREADS chat slots (its capacity), WEB_QUEUE threads where
chats beyond capacity wait at most WEB_QUEUE_S seconds for a slot, and
SPARE_THREADS more for the admin, readiness and the immediate 503s of chats
beyond capacity and queue: gunicorn runs threads_per_worker() threads.
"""

import os

# 2 processes x 576 chat slots: 1,024 streams at once on a 2-core machine, with
# an eighth to spare (a chat's slot is held until its response closes, a little
# after the client read its last byte and sent its next chat). A production
# stream lasts 10-60 s, so 50 new chats a second hold 1,000 at once; a thread
# that waits on its upstream costs memory, not CPU (docs/operations.md,
# "Serving", has the measurements).
DEFAULT_WORKERS = 2
DEFAULT_THREADS = 576
# Chats that may wait for a slot, per worker, and for how long at most.
DEFAULT_QUEUE = 64
DEFAULT_QUEUE_S = 3.0
# Threads that never hold a chat: the admin, /readyz, and the 503s of chats
# beyond capacity and queue, which are answered at once.
SPARE_THREADS = 16


def web_workers() -> int:
    return int(os.environ.get("WEB_CONCURRENCY", DEFAULT_WORKERS))


def web_threads() -> int:
    """Chats one worker runs at once (its capacity)."""
    return int(os.environ.get("WEB_THREADS", DEFAULT_THREADS))


def web_queue() -> int:
    """Chats beyond capacity that may wait for a slot in one worker."""
    return int(os.environ.get("WEB_QUEUE", DEFAULT_QUEUE))


def web_queue_s() -> float:
    """The longest a chat waits for a slot before its 503."""
    return float(os.environ.get("WEB_QUEUE_S", DEFAULT_QUEUE_S))


def threads_per_worker() -> int:
    """Gunicorn's threads per worker: the chat slots, the queue and the spare threads."""
    return web_threads() + web_queue() + SPARE_THREADS
