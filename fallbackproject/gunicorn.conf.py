"""Gunicorn settings for production.

Run: `gunicorn -c fallbackproject/gunicorn.conf.py fallbackproject.wsgi`.

Threaded workers (gthread): a chat spends seconds to minutes waiting on its
upstream, so each process runs WEB_THREADS chats at once (default 576) and
WEB_CONCURRENCY processes (default 2) share the machine's cores. Each worker
also has WEB_QUEUE threads (default 64) where chats beyond capacity wait at
most WEB_QUEUE_S (3 s) before a 503 with Retry-After, and a few spare threads
for the admin and immediate 503s (fallbackproject/admission.py).
Liveness and readiness are answered by the master on HEALTH_BIND (default: the
main port + 1), which chats cannot saturate (fallbackproject/health_listener.py).
Size it as workers ~ cores (1-2 per core: more processes only help when the
CPU, not the upstream, is the limit) and workers x threads >= 1.25 x the chats
you expect at once; a thread costs little resident memory. The database pool
of each process is sized from WEB_THREADS (fallbackproject/settings/base.py).
docs/operations.md ("Serving") has the measurements behind these defaults.

Command-line flags override these (e.g. `-b 0.0.0.0:8000 -w 4`); size the
threads with WEB_THREADS and WEB_QUEUE rather than `--threads`, so that the
chat slots and the threads agree.
When PROMETHEUS_MULTIPROC_DIR is set, every worker writes its metrics there and
`/metrics` adds them up; the hooks below keep that folder truthful.
"""

import os
import shutil
from pathlib import Path

from prometheus_client import multiprocess

from fallbackproject import capacity, health_listener
from fallbackproject.serving import threads_per_worker, web_workers

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# gthread, leaving new connections to a sibling while this worker's chat slots
# are full and the sibling's are not (fallbackproject/gunicorn_worker.py).
worker_class = "fallbackproject.gunicorn_worker.ChatThreadWorker"
workers = web_workers()
threads = threads_per_worker()
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
# A recycled worker drains all its chats while its sibling takes every new one,
# so "now and then" is tens of thousands of requests: at 2,000, a worker under
# 1,000+ streams was recycled about every 30 s (refusals counted as requests).
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "50000"))
max_requests_jitter = max_requests // 10


# Shared by the master and its forked workers (fallbackproject/capacity.py).
_board = capacity.Board()
_worker_rows: dict[int, int] = {}  # worker age -> its row on the board
_health: health_listener.HealthListener | None = None


def when_ready(server) -> None:
    """Before the workers start: connections per worker = its threads (see above),
    and the liveness/readiness listener in this (master) process."""
    global _health
    server.cfg.set("worker_connections", server.cfg.threads)
    configured = os.environ.get("HEALTH_BIND")
    address = health_listener.health_bind(
        server.cfg.bind[0] if server.cfg.bind else bind, configured
    )
    if address is None:
        return
    try:
        _health = health_listener.for_arbiter(server, address, _board).start()
    except OSError as error:
        if configured is not None:
            raise  # the operator asked for this address: do not serve without it
        # The implicit main port + 1 is taken: serve anyway, and say so.
        server.log.error("No liveness/readiness listener at %s:%s (%s)", *address, error)
        return
    host, port = _health.address
    server.log.info("Liveness and readiness at http://%s:%s/healthz and /readyz", host, port)


def pre_fork(server, worker) -> None:
    """A row on the board for the worker about to be forked (master)."""
    _worker_rows[worker.age] = _board.claim()


def post_fork(server, worker) -> None:
    """In the new worker: its row on the board; the master's health socket is not its own."""
    capacity.attach(_board, _worker_rows[worker.age])
    if _health is not None:
        _health.server.server_close()  # the child's copy of the socket only


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
    """The dead worker's row leaves the board; its live gauges stop counting
    (its counters stay summed)."""
    row = _worker_rows.pop(worker.age, None)
    if row is not None:
        _board.release(row)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)
