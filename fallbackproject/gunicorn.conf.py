"""Gunicorn settings for production.

Run: `gunicorn -c fallbackproject/gunicorn.conf.py fallbackproject.wsgi`.

Threaded workers (gthread): a chat spends seconds to minutes waiting on its
upstream, so each process holds WEB_THREADS requests at once (default 160) and
WEB_CONCURRENCY processes (default 2) share the machine's cores: 320
connections at once by default, 256 chats with room for /healthz and the admin.
Size it as workers ~ cores (1-2 per core: more processes only help when the
CPU, not the upstream, is the limit) and workers x threads >= 1.25 x the chats
you expect at once; a thread costs little resident memory. The database pool
of each process is sized from WEB_THREADS (fallbackproject/settings/base.py).
docs/operations.md ("Serving") has the measurements behind these defaults.

Command-line flags override these (e.g. `-b 0.0.0.0:8000 -w 4 --threads 64`).
When PROMETHEUS_MULTIPROC_DIR is set, every worker writes its metrics there and
`/metrics` adds them up; the hooks below keep that folder truthful.
"""

import os
import shutil
from pathlib import Path

from prometheus_client import multiprocess

from fallbackproject.serving import web_threads, web_workers

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
worker_class = "gthread"
workers = web_workers()
threads = web_threads()
# A worker holds no more connections than it has threads (set in when_ready,
# once command-line flags are known), so it keeps no idle keep-alive
# connections: each connection closes after its response and the next one waits
# in the listen backlog for whichever worker frees a thread first. With
# keep-alive, one worker accepted more clients than it had threads while the
# other idled (256 streaming clients on 2 x 128 threads queued for seconds).
# Behind a reverse proxy, keep-alive to clients is the proxy's job.
backlog = 2048
# Above FALLBACK_DEADLINE_S (45 s): a request runs out of providers before the
# worker is killed, so the caller gets a 503 with reasons, not a dropped socket.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = 30
keepalive = 5  # unused while worker_connections = threads (see above)
accesslog = "-"
# Recycle workers now and then; counters survive it (their files stay summed).
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "2000"))
max_requests_jitter = 200


def when_ready(server) -> None:
    """Before the workers start: connections per worker = its threads (see above)."""
    server.cfg.set("worker_connections", server.cfg.threads)


def on_starting(server) -> None:
    """Files left by an earlier run would be added to this run's metrics: empty the folder."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not folder:
        return
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    for child in path.iterdir():
        if child.is_dir():
            shutil.rmtree(child)
        else:
            child.unlink()


def worker_exit(server, worker) -> None:
    """Buffered call counters of the exiting worker reach the database."""
    try:
        from providers_app.engine import counters

        counters.flush_pending()
    except Exception:  # the app may not have loaded; never block the exit
        server.log.exception("could not flush call counters of worker %s", worker.pid)


def child_exit(server, worker) -> None:
    """Live gauges of a dead worker stop counting (its counters stay summed)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)
