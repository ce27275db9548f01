"""The documented production server holds many chats at once (issue 11).

Real gunicorn with `fallbackproject/gunicorn.conf.py` and the production
settings, on a SQLite file, in front of a local upstream that answers after
UPSTREAM_DELAY_S. CHATS clients post at once, half of them streaming: every chat
is answered, and every one of them reached the upstream before the first could
have been answered, so they were served side by side (with sync workers, two at
a time, most would still be queued). No timing is asserted beyond that order.
"""

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from providers_app.simulator.server import UpstreamSimulator

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CHATS = 48
UPSTREAM_DELAY_S = 3.0
SETUP = """
from providers_app.models import Provider
from providers_app.services.client_keys import client_key_create
Provider.objects.create(
    name="upstream", kind="simulated", base_url="{base_url}", model="m"
)
print(client_key_create(name="threaded-test").raw_key)
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    return done.stdout


@pytest.fixture
def upstream():
    with UpstreamSimulator("threaded-upstream") as sim:
        sim.set_fault("ok", delay_s=UPSTREAM_DELAY_S)
        yield sim


@pytest.fixture
def server(tmp_path, upstream):
    """(port, client key) of gunicorn serving the production settings."""
    port = _free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "fallbackproject.settings.production",
        "DJANGO_SECRET_KEY": "threaded-test-" + "x" * 50,
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DJANGO_SECURE_SSL_REDIRECT": "false",
        "DJANGO_LOG_LEVEL": "WARNING",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }
    _manage(env, "migrate", "--noinput")
    key = _manage(env, "shell", "-c", SETUP.format(base_url=upstream.base_url)).split()[-1]
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "fallbackproject/gunicorn.conf.py",
         "--access-logfile", "/dev/null", "fallbackproject.wsgi"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        give_up = time.monotonic() + 60
        while _status(port, "/healthz") != 200:
            if process.poll() is not None or time.monotonic() > give_up:
                raise AssertionError(f"gunicorn did not start: {process.stderr.read()[-2000:]}")
            time.sleep(0.2)
        yield port, key
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _status(port: int, path: str) -> int | None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    except OSError:
        return None
    finally:
        conn.close()


def _chat(port: int, key: str, stream: bool) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        body = {"messages": [{"role": "user", "content": "Say hello."}], "stream": stream}
        conn.request(
            "POST",
            "/v1/chat/completions",
            json.dumps(body),
            {"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_the_production_server_answers_many_chats_side_by_side(server, upstream):
    port, key = server
    results: list[tuple[bool, int, bytes]] = []
    start = threading.Barrier(CHATS)

    def client(stream: bool) -> None:
        start.wait()
        status, body = _chat(port, key, stream)
        results.append((stream, status, body))

    clients = [threading.Thread(target=client, args=(i % 2 == 0,)) for i in range(CHATS)]
    for thread in clients:
        thread.start()
    while upstream.request_count < CHATS and any(t.is_alive() for t in clients):
        time.sleep(0.05)
    healthz_during_load = _status(port, "/healthz")
    for thread in clients:
        thread.join(timeout=120)

    assert len(results) == CHATS
    assert [status for _, status, _ in results] == [200] * CHATS
    assert all(b"data: [DONE]" in body for stream, _, body in results if stream)
    assert all(b'"choices"' in body for stream, _, body in results if not stream)
    arrivals = sorted(upstream.request_times)
    assert len(arrivals) == CHATS
    # Every chat reached the upstream before the first one could be answered.
    assert arrivals[-1] - arrivals[0] < UPSTREAM_DELAY_S
    # And the server still answered its liveness check with every chat in flight.
    assert healthz_during_load == 200
