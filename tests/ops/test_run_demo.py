"""`manage.py run_demo` starts a Celery worker and beat, the upstreams and demo
traffic next to the web server, and nothing it started outlives it."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from unittest import mock

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from providers_app.management.commands import run_demo


class _FakeProcess:
    def __init__(self, args, **kwargs):
        self.args, self.pid, self.stopped = args, 4000 + len(args), False

    def poll(self):
        return 0 if self.stopped else None

    def terminate(self):
        self.stopped = True

    def wait(self, timeout=None):
        return 0


@pytest.fixture
def started(monkeypatch):
    processes: list[_FakeProcess] = []

    def popen(args, **kwargs):
        processes.append(_FakeProcess(args, **kwargs))
        return processes[-1]

    monkeypatch.setattr(run_demo.subprocess, "Popen", popen)
    monkeypatch.setattr(run_demo, "run_simulators", lambda specs: [])
    monkeypatch.setattr(run_demo, "port_is_free", lambda host, port: True)
    return processes


def test_worker_and_beat_start_with_the_web_server_and_stop_after_it(started):
    with mock.patch.object(run_demo, "call_command") as runserver:
        call_command("run_demo", "127.0.0.1:8123", "--no-traffic", stdout=mock.Mock())

    runserver.assert_called_once_with("runserver", "127.0.0.1:8123", use_reloader=False)
    worker, beat = started
    assert worker.args[-len(run_demo.WORKER_ARGS) :] == list(run_demo.WORKER_ARGS)
    assert "-A" in worker.args
    assert "fallbackproject" in worker.args
    assert beat.args[-len(run_demo.BEAT_ARGS) :] == list(run_demo.BEAT_ARGS)
    assert worker.stopped
    assert beat.stopped


def test_they_are_stopped_when_the_server_fails_too(started):
    with (
        mock.patch.object(run_demo, "call_command", side_effect=KeyboardInterrupt),
        pytest.raises(KeyboardInterrupt),
    ):
        call_command("run_demo", "--no-traffic", stdout=mock.Mock())
    assert [p.stopped for p in started] == [True, True]


def test_no_celery_starts_only_the_web_server(started):
    with mock.patch.object(run_demo, "call_command"):
        call_command("run_demo", "--no-celery", "--no-traffic", stdout=mock.Mock())
    assert started == []


def test_a_process_that_ignores_sigterm_is_killed():
    process = mock.Mock(spec=subprocess.Popen)
    process.poll.return_value = None
    process.wait.side_effect = [subprocess.TimeoutExpired("celery", 10), 0]

    run_demo.stop_background(process)

    process.terminate.assert_called_once()
    process.kill.assert_called_once()


def test_a_busy_web_port_is_refused_before_anything_starts(monkeypatch):
    """runserver would exit without cleanup on a busy port and orphan the worker."""
    monkeypatch.setattr(run_demo, "run_simulators", mock.Mock())
    monkeypatch.setattr(run_demo.subprocess, "Popen", mock.Mock())
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(CommandError, match="not a free address"):
            call_command("run_demo", f"127.0.0.1:{port}", stdout=mock.Mock())
    run_demo.run_simulators.assert_not_called()
    run_demo.subprocess.Popen.assert_not_called()


# -- the real thing: a process tree on free ports, stopped by Ctrl-C ----------

REPO = Path(__file__).resolve().parents[2]


def _free_port_run(count: int) -> int:
    """A port P with P..P+count-1 all free (the demo's upstreams are consecutive)."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = first.getsockname()[1]
        if port + count < 65535 and all(
            run_demo.port_is_free("127.0.0.1", port + i) for i in range(count)
        ):
            return port
    raise RuntimeError("no run of free ports")


def _descendants(pid: int) -> set[int]:
    found: set[int] = set()
    pending = [pid]
    while pending:
        parent = pending.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                if child not in found:
                    found.add(child)
                    pending.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _manage(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO, env=env, check=True,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


HELLO = {"model": "fallback", "messages": [{"role": "user", "content": "hi"}]}


def _chat(web: str, key: str, body: dict = HELLO) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"http://{web}/v1/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, {}
    except OSError:
        return 0, {}


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc (Linux)")
def test_ctrl_c_stops_every_process_it_started(tmp_path):
    web = f"127.0.0.1:{_free_port_run(1)}"
    sim_port = _free_port_run(3)
    credentials = tmp_path / "credentials.json"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "fallbackproject.settings.local",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}",
        "CELERY_BROKER_URL": "filesystem://localhost//",
        "CELERY_FILESYSTEM_BROKER_DIR": str(tmp_path / "celery"),
    }
    _manage("migrate", "--noinput", "--verbosity", "0", env=env)
    _manage("demo_setup", "--sim-port", str(sim_port), "--credentials", str(credentials), env=env)
    key = json.loads(credentials.read_text())["client_key"]
    log = tmp_path / "run_demo.log"
    with log.open("w") as output:  # a file, not a pipe: leftovers cannot block the test
        demo = subprocess.Popen(  # started in its own session: only the test signals it
            [sys.executable, "manage.py", "run_demo", web, "--sim-port", str(sim_port),
             "--credentials", str(credentials), "--traffic-rate", "2"],
            cwd=REPO, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    children: set[int] = set()
    try:
        # The printed curl answers (the schedule starts healthy, then fails over).
        deadline = time.monotonic() + 60
        while _chat(web, key)[0] != 200:
            assert demo.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the demo never answered"
            time.sleep(0.5)
        # So does the seeded tool-calling example.
        tool_call = json.loads((tmp_path / "tool-call.json").read_text())
        status, answer = _chat(web, key, tool_call)
        assert status == 200
        assert answer["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == (
            "get_weather"
        )
        children = _descendants(demo.pid)
        assert len(children) >= 2, "a Celery worker and beat"

        demo.send_signal(signal.SIGINT)
        time.sleep(0.3)  # an impatient second Ctrl-C must not cut the cleanup short
        demo.send_signal(signal.SIGINT)
        demo.wait(timeout=60)

        assert [pid for pid in children if _alive(pid)] == []
        for port in (int(web.rsplit(":", 1)[1]), sim_port, sim_port + 1, sim_port + 2):
            assert run_demo.port_is_free("127.0.0.1", port), f"port {port} still bound"
        printed = log.read_text()
        assert "The primary's fault schedule" in printed
        assert f"Bearer {key}" in printed
        assert "Demo traffic: 2 chats/s" in printed
        assert f"-d @{tmp_path / 'tool-call.json'}" in printed
        assert "Traceback" not in printed
    finally:
        for pid in [demo.pid, *children]:  # only what this test started
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        demo.wait()
