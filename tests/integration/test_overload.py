"""Graceful overload through the documented server (issue 25, item 2).

Real gunicorn with `fallbackproject/gunicorn.conf.py` and the production
settings, made small: one worker with CAPACITY chat slots, QUEUE chats allowed
to wait at most QUEUE_S for one, in front of an upstream that answers after
UPSTREAM_DELAY_S (longer than QUEUE_S, so no waiting chat gets a slot). More
chats than the worker has threads arrive at once: the admitted ones are
answered in full, every other one gets a 503 with Retry-After and an
OpenAI-shaped error (never a reset or a timeout), while the master's own
listener answers liveness and says "saturated" on readiness. No timing is
asserted.
"""

import contextlib
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

from fallbackproject.serving import SPARE_THREADS
from providers_app.simulator.server import UpstreamSimulator

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CAPACITY = 2
QUEUE = 2
QUEUE_S = 2.0
UPSTREAM_DELAY_S = 6.0
# More than the worker's threads: some chats wait in the listen backlog for a
# thread, and still get an answer.
CHATS = CAPACITY + QUEUE + SPARE_THREADS + 10
SETUP = """
from providers_app.models import Provider
from providers_app.services.client_keys import client_key_create
Provider.objects.create(
    name="upstream", kind="simulated", base_url="{base_url}", model="m"
)
print(client_key_create(name="overload-test").raw_key)
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


def _get(port: int, path: str) -> tuple[int | None, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    except OSError:
        return None, {}
    finally:
        conn.close()


@pytest.fixture
def upstream():
    with UpstreamSimulator("overload-upstream") as sim:
        sim.set_fault("ok", delay_s=UPSTREAM_DELAY_S)
        yield sim


@contextlib.contextmanager
def _gunicorn(tmp_path, upstream, workers: int):
    """(main port, health port, client key) of gunicorn with `workers` workers of
    CAPACITY chat slots and QUEUE queue places each."""
    port, health_port = _free_port(), _free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "fallbackproject.settings.production",
        "DJANGO_SECRET_KEY": "overload-test-" + "x" * 50,
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DJANGO_SECURE_SSL_REDIRECT": "false",
        "DJANGO_LOG_LEVEL": "WARNING",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "HEALTH_BIND": f"127.0.0.1:{health_port}",
        "WEB_CONCURRENCY": str(workers),
        "WEB_THREADS": str(CAPACITY),
        "WEB_QUEUE": str(QUEUE),
        "WEB_QUEUE_S": str(QUEUE_S),
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
        while _get(health_port, "/readyz")[1].get("workers") != workers:
            if process.poll() is not None or time.monotonic() > give_up:
                raise AssertionError(f"gunicorn did not start: {process.stderr.read()[-2000:]}")
            time.sleep(0.2)
        yield port, health_port, key
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def server(tmp_path, upstream):
    """One worker at tiny capacity."""
    with _gunicorn(tmp_path, upstream, workers=1) as started:
        yield started


def _chat(port: int, key: str) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        body = {"messages": [{"role": "user", "content": "Say hello."}], "stream": True}
        conn.request(
            "POST",
            "/v1/chat/completions",
            json.dumps(body),
            {"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def test_chats_beyond_capacity_get_503_with_retry_after_while_probes_answer(server, upstream):
    port, health_port, key = server
    results: list[tuple[int, dict[str, str], bytes] | BaseException] = []
    start = threading.Barrier(CHATS)

    def client() -> None:
        start.wait()
        try:
            results.append(_chat(port, key))
        except BaseException as error:  # a reset or a timeout: the test says which
            results.append(error)

    clients = [threading.Thread(target=client) for _ in range(CHATS)]
    for thread in clients:
        thread.start()
    give_up = time.monotonic() + 30
    while upstream.request_count < CAPACITY and time.monotonic() < give_up:
        time.sleep(0.05)
    # Every slot busy: the master answers both probes, and readiness says saturated.
    liveness = _get(health_port, "/healthz")
    readiness = _get(health_port, "/readyz")
    for thread in clients:
        thread.join(timeout=120)

    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors == []
    answered = [r for r in results if r[0] == 200]
    refused = [r for r in results if r[0] == 503]
    assert len(answered) == CAPACITY
    assert len(refused) == CHATS - CAPACITY
    assert all(b"data: [DONE]" in body for _, _, body in answered)
    for _, headers, body in refused:
        assert int(headers["Retry-After"]) >= 1
        error = json.loads(body)["error"]
        assert error["code"] == "server_at_capacity"
        assert error["type"] == "service_unavailable"
    # Only the admitted chats reached the upstream.
    assert upstream.request_count == CAPACITY

    assert liveness == (200, {"status": "ok", "workers": 1})
    assert readiness[0] == 503
    assert readiness[1]["status"] == "saturated"
    assert readiness[1]["running"] == CAPACITY
    # Once the chats are over (a slot is given back just after the stream's
    # last byte), the server is ready again: both ports say so.
    give_up = time.monotonic() + 10
    while _get(health_port, "/readyz")[0] != 200 and time.monotonic() < give_up:
        time.sleep(0.05)
    assert _get(health_port, "/readyz")[1]["status"] == "ready"
    assert _get(port, "/readyz") == (
        200,
        {"status": "ready", "capacity": CAPACITY, "running": 0, "waiting": 0, "workers": 1},
    )


def test_a_waiting_chat_takes_the_slot_a_finished_chat_gives_back(server, upstream):
    """Queued, not refused, when a slot frees within the queue time."""
    port, _, key = server
    upstream.set_fault("ok", delay_s=0.0)
    results: list[int] = []
    clients = [
        threading.Thread(target=lambda: results.append(_chat(port, key)[0]))
        for _ in range(CAPACITY + QUEUE)
    ]
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join(timeout=60)
    assert results == [200] * (CAPACITY + QUEUE)


def test_a_worker_with_every_slot_taken_leaves_the_next_chat_to_a_worker_with_room(
    tmp_path, upstream
):
    """Two workers of CAPACITY slots: however the kernel hands out connections,
    2 x CAPACITY chats at once are all admitted (none waits in a full worker's
    queue and is refused while the other worker has room)."""
    with _gunicorn(tmp_path, upstream, workers=2) as (port, _, key):
        results: list[int] = []

        def client() -> None:
            results.append(_chat(port, key)[0])

        clients = []
        for n in range(2 * CAPACITY):
            clients.append(threading.Thread(target=client))
            clients[-1].start()
            # One at a time: the next arrives once this one holds its slot.
            give_up = time.monotonic() + 30
            while upstream.request_count < n + 1 and time.monotonic() < give_up:
                time.sleep(0.02)
        for thread in clients:
            thread.join(timeout=60)
    assert results == [200] * (2 * CAPACITY)
