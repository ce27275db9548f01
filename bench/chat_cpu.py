"""CPU time of one chat through the production WSGI app, in one thread.

    .venv/bin/python bench/chat_cpu.py [--chats 400] [--rounds 5] [--postgres URL]

The serving process's own share of a chat, with nothing else competing:
the project's `application` (liveness, admission, Django and its middleware,
the API view, per-key limits, the engine, the adapter over HTTP to a local
simulated upstream, the relay of the answer) called in this thread, with the
production settings on a scratch SQLite database (or PostgreSQL). It reports
the thread's CPU time per chat (`time.thread_time`: the simulator's threads
are not counted), streamed and not, median of `--rounds` rounds of `--chats`
chats each, after a warm-up.

bench/concurrency.py measures the same work under load through gunicorn,
where the figure also carries the server's parsing and the cost of hundreds
of threads sharing two cores; this one isolates the application, so that two
versions of it can be compared on a noisy machine: run it in both checkouts,
alternately, and compare the medians.
"""

import argparse
import io
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

HELLO = [{"role": "user", "content": "Say hello."}]


def _set_up(database_url: str):
    os.environ.update(
        DATABASE_URL=database_url,
        DJANGO_SETTINGS_MODULE="fallbackproject.settings.production",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_ALLOWED_HOSTS="127.0.0.1",
        DJANGO_SECURE_SSL_REDIRECT="false",
        DJANGO_LOG_LEVEL="WARNING",
    )
    import django

    django.setup()
    from django.core.management import call_command

    from providers_app.models import Provider
    from providers_app.services.client_keys import client_key_create
    from providers_app.simulator.server import UpstreamSimulator

    call_command("migrate", verbosity=0)
    upstream = UpstreamSimulator("bench-upstream").start()
    upstream.set_fault("ok", delay_s=0)
    Provider.objects.all().delete()
    Provider.objects.create(
        name="upstream", kind="simulated", base_url=upstream.base_url, model="m", timeout_s=30
    )
    # Limits sized for the run, as bench/concurrency.py does: counted, never refusing.
    key = client_key_create(
        name=f"bench-{time.time()}", max_concurrent_requests=10**6, requests_per_minute=10**8
    )
    from fallbackproject.wsgi import application

    return application, key.raw_key, upstream


def _chat(application, key: str, stream: bool) -> None:
    body = json.dumps({"messages": HELLO, "stream": stream}).encode()
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/v1/chat/completions",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "HTTP_HOST": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "CONTENT_LENGTH": str(len(body)),
        "CONTENT_TYPE": "application/json",
        "HTTP_AUTHORIZATION": f"Bearer {key}",
        "REMOTE_ADDR": "127.0.0.1",
    }
    statuses = []
    result = application(environ, lambda status, headers, exc_info=None: statuses.append(status))
    try:
        answer = b"".join(result)
    finally:
        result.close()
    whole = b"data: [DONE]" in answer if stream else b'"choices"' in answer
    if not (statuses[0].startswith("200") and whole):
        raise SystemExit(f"chat failed: {statuses[0]} {answer[:300]!r}")


def _cpu_ms_per_chat(application, key: str, stream: bool, chats: int) -> float:
    started = time.thread_time()
    for _ in range(chats):
        _chat(application, key, stream)
    return (time.thread_time() - started) * 1000 / chats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chats", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--postgres", default="", help="a scratch database URL instead of SQLite")
    args = parser.parse_args()
    database_url = args.postgres or f"sqlite:///{tempfile.mkdtemp()}/bench.sqlite3"
    application, key, upstream = _set_up(database_url)
    try:
        rows = []
        for stream in (True, False):
            for _ in range(50):  # warm-up: connections, caches, the routing snapshot
                _chat(application, key, stream)
            rounds = [
                _cpu_ms_per_chat(application, key, stream, args.chats) for _ in range(args.rounds)
            ]
            rows.append(("streamed" if stream else "whole answer", rounds))
    finally:
        upstream.stop()
    database = "PostgreSQL" if args.postgres else "SQLite"
    print(f"CPU per chat in the serving thread ({database}; {args.rounds} rounds of {args.chats})")
    print()
    print("| chat | median ms | min ms | max ms |")
    print("|---|---|---|---|")
    for name, rounds in rows:
        median, low, high = statistics.median(rounds), min(rounds), max(rounds)
        print(f"| {name} | {median:.2f} | {low:.2f} | {high:.2f} |")


if __name__ == "__main__":
    main()
