"""How many requests one web process holds at once: read by gunicorn.conf.py and
by the database settings, so the connection pool is sized from the same number.

An LLM answer takes seconds and a stream minutes, and a request spends nearly
all of it waiting on the upstream socket: threads, not processes, are what a
machine needs many of. docs/operations.md ("Serving") says how to size them.
"""

import os

# 2 processes x 128 threads hold 256 chats at once on a 2-core machine
# (bench/concurrency.py: 256 streaming clients, upstream answering in 4 s).
DEFAULT_WORKERS = 2
DEFAULT_THREADS = 128


def web_workers() -> int:
    return int(os.environ.get("WEB_CONCURRENCY", DEFAULT_WORKERS))


def web_threads() -> int:
    return int(os.environ.get("WEB_THREADS", DEFAULT_THREADS))
