"""/metrics adds up every gunicorn worker's counts (prometheus_client multiprocess
mode), including a worker that was recycled. Real gunicorn, two workers."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "fallbackproject" / "gunicorn.conf.py"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str) -> str:
    request = urllib.request.Request(url, headers={"Connection": "close"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read().decode()


def _samples(base: str) -> dict[tuple[str, tuple], float]:
    text = _get(f"{base}/metrics")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _requests(samples) -> float:
    labels = (("outcome", "success"), ("provider", "mp"), ("route", "chat"))
    return samples[("fallback_requests_total", labels)]


def _latency_count(samples) -> float:
    key = ("fallback_attempt_seconds_count", (("outcome", "success"), ("provider", "mp")))
    return samples[key]


@pytest.fixture
def gunicorn(tmp_path):
    port = _free_port()
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus"),
        "DJANGO_SETTINGS_MODULE": "fallbackproject.settings.test",
        # /metrics reads breaker state from the database; an empty one is fine.
        "DATABASE_URL": f"sqlite:///{tmp_path / 'empty.sqlite3'}",
        "DJANGO_LOG_LEVEL": "ERROR",
    }
    server = subprocess.Popen(
        # One thread each, so that 4 requests at a time must spread over both workers.
        [sys.executable, "-m", "gunicorn", "-c", str(CONFIG), "-w", "2", "--threads", "1",
         "-b", f"127.0.0.1:{port}", "--log-level", "warning", "tests.ops.gunicorn_app:application"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        give_up = time.monotonic() + 30
        while True:
            try:
                _get(f"{base}/healthz")
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > give_up:
                    raise AssertionError(
                        f"gunicorn did not start: {server.stderr.read()}"
                    ) from None
                time.sleep(0.1)
        yield base
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _work(base: str, count: int) -> list[int]:
    """`count` requests, 4 at a time, each holding its worker briefly: both
    single-threaded workers must serve some."""
    with ThreadPoolExecutor(4) as pool:
        return [int(pid) for pid in pool.map(lambda _: _get(f"{base}/_test/work?sleep=0.15"),
                                             range(count))]  # fmt: skip


def test_two_workers_counts_add_up_in_every_scrape(gunicorn):
    pids = _work(gunicorn, 8)
    assert len(set(pids)) == 2, pids  # both workers counted some

    for _ in range(4):  # whichever worker answers the scrape sees every worker's counts
        samples = _samples(gunicorn)
        assert _requests(samples) == 8
        assert _latency_count(samples) == 8

    # A recycled worker (max_requests, a crash) leaves its counts behind.
    os.kill(pids[0], signal.SIGTERM)
    made, fresh = 8, set()
    give_up = time.monotonic() + 20
    while not fresh and time.monotonic() < give_up:
        fresh = set(_work(gunicorn, 4)) - set(pids)
        made += 4
    assert fresh, "gunicorn did not replace the stopped worker"
    samples = _samples(gunicorn)
    assert _requests(samples) == made
    assert _latency_count(samples) == made
