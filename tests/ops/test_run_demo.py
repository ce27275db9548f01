"""`manage.py run_demo` starts a Celery worker and beat next to the web server and
stops them when it exits."""

import subprocess
from unittest import mock

import pytest
from django.core.management import call_command

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
    return processes


def test_worker_and_beat_start_with_the_web_server_and_stop_after_it(started):
    with mock.patch.object(run_demo, "call_command") as runserver:
        call_command("run_demo", "127.0.0.1:8123", stdout=mock.Mock())

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
        call_command("run_demo", stdout=mock.Mock())
    assert [p.stopped for p in started] == [True, True]


def test_no_celery_starts_only_the_web_server(started):
    with mock.patch.object(run_demo, "call_command"):
        call_command("run_demo", "--no-celery", stdout=mock.Mock())
    assert started == []


def test_a_process_that_ignores_sigterm_is_killed():
    process = mock.Mock(spec=subprocess.Popen)
    process.poll.return_value = None
    process.wait.side_effect = [subprocess.TimeoutExpired("celery", 10), 0]

    run_demo.stop_background(process)

    process.terminate.assert_called_once()
    process.kill.assert_called_once()
