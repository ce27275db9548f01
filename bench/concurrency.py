"""Many chats at once through the production server, on SQLite and on PostgreSQL,
with LiteLLM's proxy beside it in the same run.

    .venv/bin/python bench/concurrency.py [--clients 32,128,256] [--latency 4]
        [--modes stream,plain] [--measure 16] [--postgres URL] [--workers N --threads N]
        [--no-peer] [--compare-stock]

For each mode and number of clients it starts the documented server (gunicorn
with fallbackproject/gunicorn.conf.py and the production settings) on each
database, in front of a local simulated upstream that answers after `--latency`
seconds, and runs N clients, each sending chats back to back (streaming and
not), for a warm-up then `--measure` seconds. When the peer venv exists
(`make bench-peer`), LiteLLM's proxy (bench/peer.py, PEER_WORKERS processes)
takes the same load from the same clients in front of the same upstream just
before, and our rows carry the ratio to its row. It prints per row (Markdown):

- chats/s and the ideal (clients / latency), and their ratio;
- added latency p50/p99: a chat's time minus the upstream's latency, over the
  chats that started and ended within the window;
- failed: chats not answered with a 200 and a complete body;
- /healthz p50/p99, polled every 50 ms during the load from a process of its
  own (in the clients' process, their 256 threads' interpreter lock delayed the
  poller and that wait was counted as the server's);
- resident memory per worker process (at the end of the load);
- PostgreSQL connections to the database: most open, most active (not idle);
- the workers' CPU time per answered chat (what sizing the cores depends on);
- the 1-minute load average (the machine may be shared).

`--compare-stock` adds a row per database served by Django's stock WSGI app
(bench/wsgi_stock.py), to measure the serving layer's /healthz fixes in the
same run. Everything runs on 127.0.0.1; every loop is bounded by the measuring
window.
"""

import argparse
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import peer  # noqa: E402 (after the path)
from bench.common import children_of, ratio, rss_mb  # noqa: E402
from fallbackproject.serving import web_workers  # noqa: E402

PYTHON = sys.executable
SCRATCH_DB = os.environ.get("BENCH_SCRATCH_DB", "bench_concurrency")
# The targets of issue 11 for 256 streaming clients and an upstream answering in 4 s.
TARGET_RATIO = 0.80
TARGET_ADDED_P99_MS = 500.0
TARGET_HEALTHZ_P99_MS = 100.0
HELLO = {"messages": [{"role": "user", "content": "Say hello."}]}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _cpu_s(pids: list[int]) -> float:
    """CPU time (user + system) used so far by these processes."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


# ---------------------------------------------------------------------------
# Child modes: the upstream, and the database set-up
# ---------------------------------------------------------------------------


def _run_simulator(latency_s: float) -> None:
    """A simulated upstream in its own process, so its threads do not share our GIL."""
    sys.path.insert(0, str(ROOT))
    from providers_app.simulator.server import UpstreamSimulator

    sim = UpstreamSimulator("bench-upstream").start()
    sim.set_fault("ok", delay_s=latency_s)
    print(sim.base_url, flush=True)
    sys.stdin.read()  # until the parent closes our stdin
    sim.stop()


def _set_up_database(database_url: str, upstream: str) -> None:
    """Migrate, one provider on the upstream, one client key (printed)."""
    os.environ["DATABASE_URL"] = database_url
    os.environ["DJANGO_SETTINGS_MODULE"] = "fallbackproject.settings.local"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    from providers_app.models import Provider
    from providers_app.services.client_keys import client_key_create

    call_command("migrate", verbosity=0)
    Provider.objects.all().delete()
    Provider.objects.create(
        name="upstream", kind="simulated", base_url=upstream, model="m", timeout_s=30
    )
    # One key for every client, as a chatbot's backend would use: its fairness
    # limits (FALLBACK_KEY_*, 16 at once by default) sized for the whole load,
    # so the limiter runs on every request but never refuses one.
    key = client_key_create(
        name=f"bench-{time.time()}", max_concurrent_requests=10**6, requests_per_minute=10**8
    )
    print(json.dumps({"key": key.raw_key}))


# ---------------------------------------------------------------------------
# The server under test
# ---------------------------------------------------------------------------


@dataclass
class Server:
    """A server under test: where to send chats and /healthz, and its processes."""

    process: subprocess.Popen | None
    port: int
    name: str = "ours"
    healthz_path: str = "/healthz"
    healthz_port: int | None = None  # ours: the master's own listener (HEALTH_BIND)
    model: str | None = None  # LiteLLM needs its model group named in the body
    key: str | None = None  # LiteLLM's master key; ours comes from the database
    pids: Callable[[], list[int]] | None = None
    log_path: Path | None = None  # ours: the server's stderr (its warnings and errors)

    def worker_pids(self) -> list[int]:
        if self.pids is not None:
            return self.pids()
        return children_of(self.process.pid)

    def cpu_s(self) -> float:
        """CPU time (user + system) used so far by the workers."""
        return _cpu_s(self.worker_pids())

    def rss_mb(self) -> list[float]:
        return [mb for mb in map(rss_mb, self.worker_pids()) if mb is not None]


def _start_server(database_url: str, args, metrics_dir: str, wsgi_app: str) -> Server:
    port, health_port = _free_port(), _free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "fallbackproject.settings.production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DJANGO_SECURE_SSL_REDIRECT": "false",
        "DJANGO_LOG_LEVEL": "WARNING",
        "DATABASE_URL": database_url,
        "DJANGO_DB_PGBOUNCER": "true" if args.pgbouncer and PGBOUNCED in database_url else "false",
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "HEALTH_BIND": f"127.0.0.1:{health_port}",
        "PROMETHEUS_MULTIPROC_DIR": metrics_dir,
    }
    if args.workers:
        env["WEB_CONCURRENCY"] = str(args.workers)
    if args.threads:
        env["WEB_THREADS"] = str(args.threads)
    if wsgi_app == ASGI:
        # The same project under uvicorn, as many processes as gunicorn has workers.
        workers = args.workers or web_workers()
        command = [PYTHON, "-m", "uvicorn", wsgi_app, "--host", "127.0.0.1", "--port", str(port)]
        command += ["--workers", str(workers), "--loop", "uvloop", "--http", "httptools"]
        command += ["--no-access-log", "--log-level", "warning"]
        health_port = None
    else:
        command = [PYTHON, "-m", "gunicorn", "-c", "fallbackproject/gunicorn.conf.py"]
        command += ["--access-logfile", "/dev/null", wsgi_app]
    # Its stderr goes to a file: a pipe nobody reads during the load fills up,
    # and then every thread that logs a warning blocks (chats failed, and the
    # server never finished its graceful stop, on PostgreSQL at 1,024 clients).
    log_path = Path(metrics_dir) / "server.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(  # noqa: S603 (our own command line)
            command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log
        )
    server = Server(process, port, healthz_port=health_port, log_path=log_path)
    if wsgi_app == ASGI:
        server.name = "ours, uvicorn"
        server.pids = lambda: _serving_children(process.pid)
    give_up = time.monotonic() + 60
    while time.monotonic() < give_up:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited: {log_path.read_text()[-2000:]}")
        try:
            status, _ = _get(port, "/healthz")
            if status == 200:
                return server
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("gunicorn did not answer /healthz within 60 s")


def _stop_server(server: Server) -> None:
    if server.process is None:
        return
    server.process.send_signal(signal.SIGTERM)
    try:
        server.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


def _get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


# ---------------------------------------------------------------------------
# Load
# ---------------------------------------------------------------------------


@dataclass
class Load:
    chats: list[tuple[float, float, str]] = field(default_factory=list)  # start, end, outcome
    healthz_ms: list[tuple[float, float]] = field(default_factory=list)  # at, latency
    pg_open: list[int] = field(default_factory=list)
    pg_active: list[int] = field(default_factory=list)
    pg_xacts: list[int] = field(default_factory=list)  # committed + rolled back, so far
    lock: threading.Lock = field(default_factory=threading.Lock)


OK, REFUSED, FAILED = "ok", "refused", "failed"


def _client(port: int, key: str, model: str | None, stream: bool, stop_at: float, load) -> None:
    """Chats back to back; a 503 with Retry-After is honoured (a polite client),
    and counted as refused, not failed."""
    model = {"model": model} if model else {}
    body = json.dumps({**model, **HELLO, "stream": stream})
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    while time.monotonic() < stop_at:
        started = time.monotonic()
        retry_after = 0.0
        try:
            conn.request("POST", "/v1/chat/completions", body, headers)
            response = conn.getresponse()
            data = response.read()
            complete = b"data: [DONE]" in data if stream else b'"choices"' in data
            if response.status == 200 and complete:
                outcome = OK
            elif response.status == 503 and response.getheader("Retry-After"):
                outcome, retry_after = REFUSED, float(response.getheader("Retry-After"))
            else:
                outcome = f"{FAILED}: HTTP {response.status}"
            if response.getheader("Connection", "").lower() == "close":
                conn.close()
        except (OSError, http.client.HTTPException, ValueError) as error:
            outcome = f"{FAILED}: {type(error).__name__}"
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        with load.lock:
            load.chats.append((started, time.monotonic(), outcome))
        if retry_after:
            time.sleep(max(0.0, min(retry_after, stop_at - time.monotonic())))
    conn.close()


def _run_clients(port: int, key: str, model: str, stream: str, count: int, seconds: float) -> None:
    """One load-generating process: `count` client threads until `seconds` from now.
    Prints [[start, end, outcome], ...] (monotonic clock, shared across processes)."""
    load = Load()
    stop_at = time.monotonic() + float(seconds)
    threads = [
        threading.Thread(
            target=_client, args=(port, key, model or None, stream == "1", stop_at, load)
        )
        for _ in range(int(count))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(json.dumps(load.chats), flush=True)


def _poll_healthz(port: int, path: str, stop_at: float, load: Load) -> None:
    while time.monotonic() < stop_at:
        started = time.monotonic()
        try:
            status, _ = _get(port, path)
            latency = (time.monotonic() - started) * 1000 if status == 200 else float("inf")
        except OSError:
            latency = float("inf")
        load.healthz_ms.append((started, latency))
        time.sleep(max(0.05 - (time.monotonic() - started), 0))


def _run_healthz_poller(port: int, path: str, seconds: float) -> None:
    """/healthz polled from its own process: the 256 client threads of the parent
    would otherwise delay the poller on their interpreter lock, and that wait
    would be counted as the server's. Prints [[monotonic at, ms], ...]."""
    load = Load()
    _poll_healthz(port, path, time.monotonic() + seconds, load)
    print(json.dumps(load.healthz_ms), flush=True)


def _poll_postgres(admin_url: str | None, database: str, stop_at: float, load: Load) -> None:
    if not admin_url:
        return
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        while time.monotonic() < stop_at:
            row = conn.execute(
                "SELECT count(*), count(*) FILTER (WHERE state <> 'idle') "
                "FROM pg_stat_activity WHERE datname = %s",
                [database],
            ).fetchone()
            load.pg_open.append(row[0])
            load.pg_active.append(row[1])
            conn.execute("SELECT pg_stat_clear_snapshot()")
            xacts = conn.execute(
                "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s",
                [database],
            ).fetchone()
            load.pg_xacts.append(xacts[0])
            time.sleep(0.25)


def _start_generator(server: Server, key: str, stream: bool, n: int, stop_at: float):
    command = [PYTHON, __file__, "--child-clients", str(server.port), server.key or key]
    command += [server.model or "", "1" if stream else "0", str(n)]
    command += [str(stop_at - time.monotonic())]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)  # noqa: S603


def _run_load(server: Server, key: str, clients: int, stream: bool, args, pg) -> dict:
    load = Load()
    warm_s = args.latency + 2
    begin = time.monotonic()
    window = (begin + warm_s, begin + warm_s + args.measure)
    stop_at = window[1]
    # The clients run in processes of their own (about 256 threads each), so that
    # the generator's interpreter lock is never what limits the load.
    procs = max(1, min(args.client_procs, clients // 64 or 1))
    share = [clients // procs + (i < clients % procs) for i in range(procs)]
    generators = [_start_generator(server, key, stream, n, stop_at) for n in share]
    poller = subprocess.Popen(  # noqa: S603 (this script, our arguments)
        [
            *(PYTHON, __file__, "--child-healthz", str(server.healthz_port or server.port)),
            *(server.healthz_path, str(stop_at - time.monotonic())),
        ],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    pg_thread = threading.Thread(target=_poll_postgres, args=(*pg, stop_at, load))
    pg_thread.start()
    time.sleep(max(window[0] - time.monotonic(), 0))
    cpu_at_start = server.cpu_s()
    gen_cpu_at_start = _cpu_s([g.pid for g in generators])
    time.sleep(max(stop_at - time.monotonic() - 1, 0))
    rss = server.rss_mb()
    cpu_used = server.cpu_s() - cpu_at_start
    gen_cpu_used = _cpu_s([g.pid for g in generators]) - gen_cpu_at_start
    gen_window_s = time.monotonic() - window[0]
    for generator in generators:
        out, _ = generator.communicate(timeout=args.latency * 3 + 120)
        load.chats.extend(tuple(chat) for chat in json.loads(out.strip().splitlines()[-1]))
    pg_thread.join(timeout=60)
    polled, _ = poller.communicate(timeout=60)
    own_process = json.loads(polled.strip().splitlines()[-1])
    # Throughput: chats answered within the window. Latency: chats that also
    # started in it (the warm-up's opening burst queues by design).
    in_window = [(s, e, out) for s, e, out in load.chats if window[0] <= e <= window[1]]
    answered = [e - s for s, e, out in in_window if out == OK]
    added_ms = [
        (e - s - args.latency) * 1000 for s, e, out in in_window if out == OK and s >= window[0]
    ]
    healthz = [ms for at, ms in own_process if window[0] <= at <= window[1]]
    ideal = clients / args.latency
    return {
        "chats_s": len(answered) / args.measure,
        "ideal": ideal,
        "ratio": len(answered) / args.measure / ideal,
        "failed": sum(1 for _, _, out in load.chats if out.startswith(FAILED)),
        "failures": Counter(out for _, _, out in load.chats if out.startswith(FAILED)),
        "refused": sum(1 for _, _, out in load.chats if out == REFUSED),
        "gen_cores": gen_cpu_used / max(gen_window_s, 1e-9),
        "gen_procs": procs,
        "added_p50": _percentile(added_ms, 0.5),
        "added_p99": _percentile(added_ms, 0.99),
        "healthz_p50": _percentile(healthz, 0.5),
        "healthz_p99": _percentile(healthz, 0.99),
        "rss": rss,
        "pg_open": max(load.pg_open, default=None),
        "pg_xacts_s": (load.pg_xacts[-1] - load.pg_xacts[0]) / (warm_s + args.measure)
        if len(load.pg_xacts) > 1
        else None,
        "pg_active": max(load.pg_active, default=None),
        "load": os.getloadavg()[0],
        "cpu_ms": cpu_used * 1000 / max(len(answered), 1),
    }


# ---------------------------------------------------------------------------
# Databases and the table
# ---------------------------------------------------------------------------


def _postgres(base: str) -> tuple[str, str] | None:
    """(scratch database URL, admin URL), or None when PostgreSQL is unreachable."""
    try:
        import psycopg

        with psycopg.connect(base, autocommit=True, connect_timeout=2) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {SCRATCH_DB} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {SCRATCH_DB}")
    except Exception as exc:
        print(f"PostgreSQL at {base} unavailable ({exc}); skipping it.", file=sys.stderr)
        return None
    return base.rsplit("/", 1)[0] + "/" + SCRATCH_DB, base


OURS = "fallbackproject.wsgi:application"
ASGI = "bench.asgi_django:application"  # the same project under uvicorn: --asgi
PGBOUNCED = "application_name=bench-pgbouncer"  # marks a DATABASE_URL through PgBouncer
STOCK = "bench.wsgi_stock:application"  # before the /healthz fixes: --compare-stock
# LiteLLM's proxy gets as many processes as our server has (fallbackproject/serving.py,
# 2: about one per core on this 2-core machine). Each is a uvicorn event loop, which
# holds any number of connections, so processes are the comparable unit; threads
# have no counterpart there.
PEER_WORKERS = 2
HEADERS = [
    "database", "server", "mode", "clients", "chats/s (ideal)", "of ideal", "failed",
    "refused 503", "added p50 ms", "added p99 ms", "/healthz p50 / p99 ms",
    "RSS MB per process", "PG conns open/active, transactions/s", "CPU ms per chat",
    "generator CPU (cores, procs)", "load", "target",
    "ratio to LiteLLM: chats/s, added p50, added p99",
]  # fmt: skip


def _meets_target(r: dict, clients: int) -> bool:
    """Issue 11 at 256 clients, issue 25 at 1,024 (added p99 <= 1 s), and at 2,048
    graceful overload: nothing failed (503s allowed) and liveness kept."""
    if r["failed"] or r["healthz_p99"] > TARGET_HEALTHZ_P99_MS:
        return False
    if clients > 1024:
        return True
    added_p99 = TARGET_ADDED_P99_MS if clients <= 256 else 1000.0
    return r["refused"] == 0 and r["ratio"] >= TARGET_RATIO and r["added_p99"] <= added_p99


def _row(database: str, server: str, mode: str, clients: int, r: dict, target: bool, peer_r) -> str:
    rss = "/".join(f"{mb:.0f}" for mb in r["rss"]) or "?"
    pg = f"{r['pg_open']}/{r['pg_active']}" if r["pg_open"] is not None else "-"
    if r.get("pg_xacts_s") is not None:
        pg += f", {r['pg_xacts_s']:.0f} xact/s"
    versus = "-"
    if peer_r is not None:
        versus = ", ".join(
            ratio(r[name], peer_r[name]) for name in ("chats_s", "added_p50", "added_p99")
        )
    cells = [
        database, server, mode, clients, f"{r['chats_s']:.1f} ({r['ideal']:.0f})",
        f"{r['ratio'] * 100:.0f} %", r["failed"], r["refused"], f"{r['added_p50']:.0f}",
        f"{r['added_p99']:.0f}", f"{r['healthz_p50']:.1f} / {r['healthz_p99']:.1f}", rss, pg,
        f"{r['cpu_ms']:.1f}", f"{r['gen_cores']:.2f} ({r['gen_procs']})", f"{r['load']:.1f}",
        ("yes" if _meets_target(r, clients) else "NO") if target else "", versus,
    ]  # fmt: skip
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def _failure_note(server: str, mode: str, clients: int, r: dict) -> list[str]:
    """A line naming the causes of a row's failed chats, and one naming what the
    server logged at WARNING or above (none: no line)."""
    notes = []
    if r["failures"]:
        causes = ", ".join(f"{count} x {cause}" for cause, count in r["failures"].most_common())
        notes.append(f"- {server}, {mode}, {clients} clients: {causes}")
    if r.get("logged"):
        logged = ", ".join(f"{count} x {line!r}" for line, count in r["logged"].most_common(3))
        notes.append(f"- {server}, {mode}, {clients} clients, the server logged: {logged}")
    return notes


# Django's format ("... WARNING name message") and gunicorn's ("... [WARNING] ...").
_LOGGED_LEVELS = (" WARNING ", " ERROR ", " CRITICAL ", "[WARNING]", "[ERROR]", "[CRITICAL]")


def _logged(log_path: Path | None) -> Counter:
    """The server's WARNING/ERROR lines, alike ones counted together (ids and
    numbers blanked)."""
    if log_path is None or not log_path.exists():
        return Counter()
    lines = [
        re.sub(r"[0-9a-f]{8,}|\d+", "#", line.split(" ", 2)[-1].strip())
        for line in log_path.read_text(errors="replace").splitlines()
        if any(level in line for level in _LOGGED_LEVELS)
    ]
    return Counter(lines)


def _serving_children(supervisor: int) -> list[int]:
    """A uvicorn supervisor's workers: not itself, nor multiprocessing's
    resource tracker (a helper process of a few MB)."""
    found = []
    for pid in children_of(supervisor):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"resource_tracker" not in command:
            found.append(pid)
    return found


def _peer_server(upstream: str) -> tuple[peer.LiteLLMProxy, Server]:
    proxy = peer.LiteLLMProxy([upstream], workers=PEER_WORKERS, timeout_s=30).start()
    server = Server(
        process=None,
        port=proxy.port,
        name="litellm",
        healthz_path="/health/liveliness",
        model=proxy.model,
        key=proxy.master_key,
        pids=lambda: _serving_children(proxy.process.pid) if proxy.process else [],
    )
    return proxy, server


def _peer_row(upstream: str, clients: int, stream: bool, args) -> dict | None:
    try:
        proxy, server = _peer_server(upstream)
    except RuntimeError as error:
        print(f"LiteLLM proxy did not start; its row is skipped: {error}", file=sys.stderr)
        return None
    try:
        return _run_load(server, "", clients, stream, args, (None, ""))
    finally:
        proxy.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="32,128,256")
    parser.add_argument("--modes", default="stream,plain")
    parser.add_argument("--latency", type=float, default=4.0, help="upstream answer time, s")
    parser.add_argument("--measure", type=float, default=16.0, help="measuring window, s")
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument(
        "--pgbouncer", default="", help="also rows through PgBouncer at this URL (no database)"
    )
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-peer", action="store_true", help="our side only")
    parser.add_argument(
        "--compare-stock",
        action="store_true",
        help="also serve Django's stock WSGI app (bench/wsgi_stock.py) in each row",
    )
    parser.add_argument("--workers", type=int, default=0, help="default: gunicorn.conf.py")
    parser.add_argument("--threads", type=int, default=0, help="default: gunicorn.conf.py")
    parser.add_argument(
        "--asgi", action="store_true", help="also serve the project under uvicorn (ASGI)"
    )
    parser.add_argument(
        "--client-procs", type=int, default=4, help="load-generating processes (most)"
    )
    parser.add_argument("--child-healthz", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--child-clients", nargs=6, help=argparse.SUPPRESS)
    parser.add_argument("--child-simulator", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--child-setup", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_healthz:
        port, path, seconds = args.child_healthz
        return _run_healthz_poller(int(port), path, float(seconds))
    if args.child_clients:
        return _run_clients(int(args.child_clients[0]), *args.child_clients[1:])
    if args.child_simulator is not None:
        return _run_simulator(args.child_simulator)
    if args.child_setup:
        return _set_up_database(*args.child_setup)

    counts = [int(n) for n in args.clients.split(",")]
    modes = args.modes.split(",")
    python = None if args.no_peer else peer.peer_python()
    simulator = subprocess.Popen(  # noqa: S603
        [PYTHON, __file__, "--child-simulator", str(args.latency)],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    upstream = simulator.stdout.readline().strip()
    databases: list[tuple[str, str, tuple[str | None, str]]] = []
    if not args.no_sqlite:
        sqlite_url = f"sqlite:///{tempfile.mkdtemp()}/bench.sqlite3"
        databases.append(("SQLite", sqlite_url, (None, "")))
    if not args.no_postgres:
        found = _postgres(args.postgres)
        if found:
            databases.append(("PostgreSQL", found[0], (found[1], SCRATCH_DB)))
            if args.pgbouncer:  # the same database, the servers through PgBouncer
                through = args.pgbouncer.rstrip("/") + "/" + SCRATCH_DB + "?" + PGBOUNCED
                databases.append(("PostgreSQL via PgBouncer", through, (found[1], SCRATCH_DB)))
    apps = ([("stock", STOCK)] if args.compare_stock else []) + [("ours", OURS)]
    apps += [("ours, uvicorn", ASGI)] if args.asgi else []

    print(
        f"upstream answers in {args.latency:g} s; warm-up {args.latency + 2:g} s, then "
        f"{args.measure:g} s measured; {os.cpu_count()} CPUs; "
        f"load average {os.getloadavg()[0]:.1f} at start"
    )
    if python:
        print(
            f"Peer: litellm {peer.peer_version(python)}, its proxy with --num_workers "
            f"{PEER_WORKERS} (our server: {args.workers or 'the default'} workers), "
            "same upstream, same clients; ratios are ours / LiteLLM's"
        )
    else:
        print(peer.SKIPPED)
    print()
    print("| " + " | ".join(HEADERS) + " |")
    print("|" + "|".join("---" for _ in HEADERS) + "|", flush=True)
    failure_notes: list[str] = []
    try:
        keys = {}
        for label, url, _ in databases:
            setup = subprocess.run(  # noqa: S603
                [PYTHON, __file__, "--child-setup", url, upstream],
                cwd=ROOT, capture_output=True, text=True, check=True,
            )  # fmt: skip
            keys[label] = json.loads(setup.stdout.strip().splitlines()[-1])["key"]
        # Row by row, LiteLLM first, then ours on each database: the two sides of a
        # ratio are measured minutes apart, under the same load from the machine.
        for mode in modes:
            for clients in counts:
                stream = mode == "stream"
                peer_r = _peer_row(upstream, clients, stream, args) if python else None
                if peer_r is not None:
                    print(_row("-", "litellm", mode, clients, peer_r, False, None), flush=True)
                    failure_notes += _failure_note("litellm", mode, clients, peer_r)
                for label, url, pg in databases:
                    for name, wsgi_app in apps:
                        metrics_dir = tempfile.mkdtemp()
                        server = _start_server(url, args, metrics_dir, wsgi_app)
                        try:
                            result = _run_load(server, keys[label], clients, stream, args, pg)
                        finally:
                            _stop_server(server)
                            logged = _logged(server.log_path)
                            shutil.rmtree(metrics_dir, ignore_errors=True)
                        result["logged"] = logged
                        target = stream and clients >= 256 and args.latency == 4
                        row = _row(label, name, mode, clients, result, target, peer_r)
                        print(row, flush=True)
                        failure_notes += _failure_note(f"{label}, {name}", mode, clients, result)
    finally:
        simulator.stdin.close()
        simulator.wait(timeout=30)
    if failure_notes:
        print("\nWhy chats failed:\n" + "\n".join(failure_notes))
    print(
        "\nadded = chat time - upstream latency; /healthz polled every 50 ms from its own "
        "process (LiteLLM: /health/liveliness); RSS per worker process; PG conns = most "
        "open/most active; CPU ms = the workers' CPU per answered chat; load = 1-minute "
        "load average;\ntarget (256 streaming, 4 s): every chat answered, "
        f">= {TARGET_RATIO:.0%} of ideal, added p99 <= {TARGET_ADDED_P99_MS:.0f} ms, "
        f"/healthz p99 <= {TARGET_HEALTHZ_P99_MS:.0f} ms; "
        "stock = Django's stock WSGI app (bench/wsgi_stock.py)"
    )


if __name__ == "__main__":
    main()
