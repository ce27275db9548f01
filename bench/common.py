"""What every side-by-side benchmark shares: statistics, tables, the project's side set up.

No Django import at module level: the scripts configure Django in a child process
(settings are read once per process), and `bench/peer.py` runs without it.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
HELLO = [{"role": "user", "content": "Say hello."}]
# A database of this branch's own, so parallel runs of other benchmarks never collide
# (BENCH_POSTGRES_URL names another: each engineer's runs their own).
DEFAULT_POSTGRES = os.environ.get(
    "BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/h_bench"
)

# The project as production runs it (fallbackproject/settings/production.py), with
# the few variables that settings module requires set for a loopback run.
SERVER_ENV = {
    "DJANGO_SETTINGS_MODULE": "fallbackproject.settings.production",
    # Production settings refuse a short or published secret: a fresh one per run.
    "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
    "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
    "DJANGO_SECURE_SSL_REDIRECT": "False",
    "DJANGO_LOG_LEVEL": "ERROR",
    # Buffered counters and events go to the database as in production; no broker needed.
    "CELERY_BROKER_URL": "memory://localhost/",
}


# ---------------------------------------------------------------------------
# Statistics and tables
# ---------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


def median_p99(values: Sequence[float]) -> tuple[float, float]:
    if not values:
        return (float("nan"), float("nan"))
    return statistics.median(values), percentile(values, 0.99)


def ratio(ours: float | None, peer: float | None) -> str:
    """`ours / peer` as "0.25x" (below 1: we are ahead on a smaller-is-better figure)."""
    if ours is None or peer is None or peer != peer or ours != ours:
        return "-"
    if peer == 0:
        return "-" if ours == 0 else "inf"
    return f"{ours / peer:.2g}x" if ours / peer < 0.1 else f"{ours / peer:.2f}x"


def fmt(value: float | int | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def table(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table (readable in a terminal, pasteable into docs/benchmarks.md)."""
    lines = [f"### {title}", "", "| " + " | ".join(headers) + " |"]
    lines.append("|" + "|".join("---" for _ in headers) + "|")
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def timed_ms(call: Callable[[], object]) -> tuple[float, BaseException | None]:
    started = time.perf_counter()
    try:
        call()
    except Exception as error:  # the caller classifies; a benchmark never stops on one
        return (time.perf_counter() - started) * 1000, error
    return (time.perf_counter() - started) * 1000, None


# ---------------------------------------------------------------------------
# Child processes: one Django configuration per process
# ---------------------------------------------------------------------------


def script_main(
    parser, argv, *, measure: Callable[[dict], dict], run: Callable[[object], str]
) -> str | None:
    """A table script's command line: `--child JSON` measures in this (fresh) process
    and prints the result as JSON for the parent; otherwise run the table and print it."""
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(json.loads(args.child))))
        return None
    text = run(args)
    print(text)
    return text


def run_child(script: str, payload: dict, *, env: dict | None = None) -> dict:
    """Run `script --child JSON` in a fresh interpreter; its last stdout line is JSON."""
    out = subprocess.run(  # noqa: S603 (our own script, our own arguments)
        [sys.executable, str(ROOT / "bench" / script), "--child", json.dumps(payload)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        env={**os.environ, **SERVER_ENV, **(env or {})},
    )
    if out.returncode != 0:
        raise RuntimeError(f"{script} child failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def django_setup(database_url: str) -> None:
    """Configure Django in this (child) process against a migrated, emptied database."""
    os.environ["DATABASE_URL"] = database_url
    for name, value in SERVER_ENV.items():
        os.environ.setdefault(name, value)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    import logging

    logging.disable(logging.CRITICAL)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    providers_reset()


def providers_reset() -> None:
    from providers_app.engine.routing import routing_changed
    from providers_app.models import ClientKey, FailoverEvent, Provider

    Provider.objects.all().delete()
    FailoverEvent.objects.all().delete()
    ClientKey.objects.all().delete()
    routing_changed()


def providers_create(base_urls: Sequence[str], *, timeout_s: float = 10.0) -> list:
    """One simulated-kind provider per upstream, added in the given order (with no
    route, the order every call follows).

    The `simulated` kind speaks the OpenAI wire format, as LiteLLM's `openai/`
    deployments do, so both sides send the same bytes to the same upstream.
    """
    from providers_app.models import Provider

    providers_reset()
    return [
        Provider.objects.create(
            name=f"p{position}",
            kind=Provider.Kind.SIMULATED,
            base_url=url,
            model="sim",
            timeout_s=timeout_s,
        )
        for position, url in enumerate(base_urls, start=1)
    ]


def client_key() -> str:
    from providers_app.services.client_keys import client_key_create

    return client_key_create(name=f"bench-{time.monotonic_ns()}").raw_key


def sqlite_url() -> str:
    return f"sqlite:///{tempfile.mkdtemp(prefix='bench-')}/bench.sqlite3"


def postgres_url(url: str) -> str | None:
    """`url` with its database created when missing, or None (and a line) if unreachable."""
    name = url.rsplit("/", 1)[1]
    admin = url.rsplit("/", 1)[0] + "/postgres"
    try:
        import psycopg

        with psycopg.connect(admin, autocommit=True, connect_timeout=2) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{name}"')
    except Exception as exc:
        print(f"PostgreSQL at {url} unavailable ({exc}); skipping it.", file=sys.stderr)
        return None
    return url


def databases(postgres: str | None) -> list[tuple[str, str]]:
    found = [("SQLite", sqlite_url())]
    if postgres:
        url = postgres_url(postgres)
        if url:
            found.append(("PostgreSQL", url))
    return found


# ---------------------------------------------------------------------------
# Servers and processes
# ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check: Callable[[], bool], *, timeout_s: float, process=None) -> float:
    """Seconds until `check()` is true; raises if `process` dies or time runs out."""
    started = time.monotonic()
    while True:
        with contextlib.suppress(OSError, requests.RequestException):
            if check():
                return time.monotonic() - started
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before it answered")
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(f"nothing answered within {timeout_s} s")
        time.sleep(0.05)


def stop_process(process: subprocess.Popen, *, grace_s: float = 10) -> None:
    """Stop a process this benchmark started (its own session), then reap it."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, 15)
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, 9)
        process.wait(timeout=grace_s)


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError):
            stat = (entry / "stat").read_text()
            # The parent pid is the 2nd field after the parenthesised command name.
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def rss_mb(pid: int) -> float | None:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return None


@contextlib.contextmanager
def gunicorn_server(database_url: str, *, workers: int | None = None) -> Iterator[dict]:
    """Our documented production server: `gunicorn -c fallbackproject/gunicorn.conf.py
    fallbackproject.wsgi`, bound to a free loopback port. Yields base_url, process and
    the seconds from spawn until /healthz answered."""
    port = free_port()
    env = {
        **os.environ,
        **SERVER_ENV,
        "DATABASE_URL": database_url,
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(prefix="bench-prom-"),
    }
    if workers is not None:
        env["WEB_CONCURRENCY"] = str(workers)
    started = time.monotonic()
    process = subprocess.Popen(  # noqa: S603 (fixed argv)
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            str(ROOT / "fallbackproject" / "gunicorn.conf.py"),
            "--access-logfile",
            "/dev/null",
            "--log-level",
            "warning",
            "fallbackproject.wsgi",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: requests.get(f"{base}/healthz", timeout=2).status_code == 200,
            timeout_s=60,
            process=process,
        )
        yield {"base_url": base, "process": process, "spawned_at": started}
    finally:
        stop_process(process)
