"""How many requests one web process holds at once: read by gunicorn.conf.py and
by the database settings, so the connection pool is sized from the same number.

An LLM answer takes seconds and a stream minutes, and a request spends nearly
all of it waiting on the upstream socket: threads, not processes, are what a
machine needs many of. docs/operations.md ("Serving") says how to size them.
"""

import os

# 2 processes x 160 threads: 256 chats at once on a 2-core machine
# (bench/concurrency.py: 256 streaming clients, upstream answering in 4 s) with
# a fifth of the threads to spare, so /healthz and the admin never queue behind
# chats (with exactly 2 x 128, /healthz p99 measured 1 s at 256 clients).
DEFAULT_WORKERS = 2
DEFAULT_THREADS = 160


def web_workers() -> int:
    return int(os.environ.get("WEB_CONCURRENCY", DEFAULT_WORKERS))


def web_threads() -> int:
    return int(os.environ.get("WEB_THREADS", DEFAULT_THREADS))
