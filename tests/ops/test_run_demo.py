"""`manage.py run_demo` starts a Celery worker and beat, the upstreams and demo
traffic next to the web server, and nothing it started outlives it."""

import io
import json
import os
import re
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
def started(monkeypatch, tmp_path):
    processes: list[_FakeProcess] = []

    def popen(args, **kwargs):
        processes.append(_FakeProcess(args, **kwargs))
        return processes[-1]

    monkeypatch.setattr(run_demo.subprocess, "Popen", popen)
    monkeypatch.setattr(run_demo, "run_simulators", lambda specs: [])
    monkeypatch.setattr(run_demo, "port_is_free", lambda host, port: True)
    # The worker's and beat's log files go beside the credentials: not the repo's var/.
    monkeypatch.setattr(run_demo, "credentials_path", lambda: tmp_path / "credentials.json")
    return processes


def test_worker_and_beat_start_with_the_web_server_and_stop_after_it(started):
    with mock.patch.object(run_demo, "call_command") as runserver:
        call_command("run_demo", "127.0.0.1:8123", "--no-traffic", stdout=mock.Mock())

    runserver.assert_called_once_with(
        "runserver", "127.0.0.1:8123", use_reloader=False, stdout=mock.ANY
    )
    worker, beat = started
    assert worker.args[-len(run_demo.WORKER_ARGS) :] == list(run_demo.WORKER_ARGS)
    assert "-A" in worker.args
    assert "fallbackproject" in worker.args
    assert beat.args[-len(run_demo.BEAT_ARGS) :] == list(run_demo.BEAT_ARGS)
    assert worker.stopped
    assert beat.stopped


def test_they_are_stopped_when_the_server_fails_too(started):
    with (
        mock.patch.object(run_demo, "call_command", side_effect=OSError("no socket")),
        pytest.raises(OSError, match="no socket"),
    ):
        call_command("run_demo", "--no-traffic", stdout=mock.Mock())
    assert [p.stopped for p in started] == [True, True]


def test_ctrl_c_before_the_server_listens_stops_everything_quietly(started):
    out = io.StringIO()
    with mock.patch.object(run_demo, "call_command", side_effect=KeyboardInterrupt):
        call_command("run_demo", "--no-traffic", stdout=out)  # no exception: exit status 0
    assert [p.stopped for p in started] == [True, True]
    assert out.getvalue().splitlines()[-1] == (
        "Stopped: the web server, the Celery worker and beat."
    )


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


def _get(url: str, bearer: str | None) -> int:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as error:
        return error.code


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
        # So does the seeded tool-calling example, with arguments taken from its prompt.
        tool_call = json.loads((tmp_path / "tool-call.json").read_text())
        status, answer = _chat(web, key, tool_call)
        assert status == 200
        (call,) = answer["choices"][0]["message"]["tool_calls"]
        assert call["function"]["name"] == "get_weather"
        assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}
        # The printed Status line works for whoever copies it (the demo key), and
        # /metrics wants the printed token, as in production.
        token = json.loads(credentials.read_text())["metrics_token"]
        assert _get(f"http://{web}/api/status", key) == 200
        assert _get(f"http://{web}/metrics", None) == 401
        assert _get(f"http://{web}/metrics", token) == 200
        children = _descendants(demo.pid)
        assert len(children) >= 2, "a Celery worker and beat"

        demo.send_signal(signal.SIGINT)
        time.sleep(0.3)  # an impatient second Ctrl-C must not cut the cleanup short
        demo.send_signal(signal.SIGINT)
        assert demo.wait(timeout=60) == 0  # Ctrl-C is how the demo is meant to end

        assert [pid for pid in children if _alive(pid)] == []
        for port in (int(web.rsplit(":", 1)[1]), sim_port, sim_port + 1, sim_port + 2):
            assert run_demo.port_is_free("127.0.0.1", port), f"port {port} still bound"
        printed = log.read_text()
        assert "The primary's fault schedule" in printed
        assert f"Bearer {key}" in printed
        assert "Demo traffic: 2 chats/s" in printed
        assert f"-d @{tmp_path / 'tool-call.json'}" in printed
        assert "Traceback" not in printed
        assert f"Bearer {token}" in printed
        # The block is the last thing printed before the story: no banner, log or
        # request line after it (the worker and beat write to files beside the key).
        after_block = printed.split("What happens, one line per event", 1)[1].splitlines()[1:]
        story, stop = after_block[:-1], after_block[-1]
        assert stop == (
            "Stopped: the web server, the demo traffic, the Celery worker and beat, 3 upstreams."
        )
        noise = [
            line for line in story if line and not re.match(r"(\d\d:\d\d:\d\d  |traffic: )", line)
        ]
        assert noise == []
        assert (tmp_path / "worker.log").exists()
        assert (tmp_path / "beat.log").exists()
    finally:
        for pid in [demo.pid, *children]:  # only what this test started
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        demo.wait()


# -- the story: one line per event, with provider names -------------------------


def test_the_story_tells_each_event_in_one_line_with_names(db, make_provider):
    from providers_app.management.demo_console import EventStory
    from providers_app.models import FailoverEvent

    Kind = FailoverEvent.Kind
    primary, secondary = make_provider(name="primary"), make_provider(name="secondary")
    lines: list[str] = []
    story = EventStory(lines.append).connect()
    try:
        for kind, to, reason, status in [
            (Kind.FAILOVER, secondary, "overloaded", 503),
            (Kind.BREAKER_OPENED, None, "consecutive_failures", None),
            (Kind.BREAKER_HALF_OPEN, None, "open_expired", None),
            (Kind.BREAKER_CLOSED, None, "probe_succeeded", None),
        ]:
            FailoverEvent.objects.create(
                kind=kind, provider=primary, to_provider=to, reason=reason, status_code=status
            )
    finally:
        story.disconnect()
    FailoverEvent.objects.create(kind=Kind.FAILOVER, provider=primary, reason="after")

    told = [line[10:] for line in lines]  # after "HH:MM:SS  "
    assert [re.match(r"\d\d:\d\d:\d\d  ", line) is not None for line in lines] == [True] * 4
    assert told == [
        "Failover               primary -> secondary (overloaded, HTTP 503)",
        "Breaker opened         primary (consecutive_failures)",
        "Breaker half-open      primary: probing, one request may try it again",
        "Breaker closed         primary: breaker closed, traffic is back (probe_succeeded)",
    ]
