"""`manage.py run_demo`: simulated upstreams with switchable faults, a Celery worker
and beat on the embedded broker, plus the web server.

The worker and beat are child processes with this process's settings and
environment (so the embedded filesystem broker unless CELERY_BROKER_URL says
otherwise); they are stopped when the web server exits, Ctrl-C included.
"""

import os
import signal
import subprocess
import sys
from collections.abc import Sequence

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from providers_app.simulator.server import DEMO_SPECS, run_simulators

CELERY = (sys.executable, "-m", "celery", "-A", "fallbackproject")
# The embedded broker has no broadcast: gossip, mingle and heartbeats would only
# leave files behind. Threads: health checks wait on the network, not the CPU.
WORKER_ARGS = (
    "worker", "--loglevel", "INFO", "--pool", "threads", "--concurrency", "4",
    "--without-gossip", "--without-mingle", "--without-heartbeat",
)  # fmt: skip
BEAT_ARGS = ("beat", "--loglevel", "INFO")  # the scheduler comes from CELERY_BEAT_SCHEDULER
STOP_TIMEOUT_S = 10


def start_background(args: Sequence[str]) -> subprocess.Popen:
    # Fixed argument lists of this module, never user input.
    return subprocess.Popen([*CELERY, *args], cwd=settings.BASE_DIR, env=os.environ.copy())  # noqa: S603


def stop_background(process: subprocess.Popen) -> None:
    """Warm shutdown (SIGTERM), then kill if it does not finish in time."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class Command(BaseCommand):
    help = (
        "Start the demo upstreams (primary, secondary, tertiary), a Celery worker and beat, "
        "and serve on ADDRPORT."
    )

    def add_arguments(self, parser):
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000")
        parser.add_argument(
            "--no-celery",
            action="store_true",
            help="Do not start the worker and beat (no health checks or roll-ups).",
        )

    def handle(self, *args, addrport: str, no_celery: bool, **options):
        # A SIGTERM (a supervisor, `kill`) must run the cleanup below like Ctrl-C
        # does; Python's default would exit at once and orphan the worker and beat.
        previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
        simulators = run_simulators(DEMO_SPECS)
        background: list[subprocess.Popen] = []
        try:
            for sim in simulators:
                self.stdout.write(
                    f"Upstream {sim.name!r} on {sim.base_url}; switch its faults at "
                    f"http://127.0.0.1:{sim.port}/_sim"
                )
            if not no_celery:
                background = [start_background(WORKER_ARGS), start_background(BEAT_ARGS)]
                self.stdout.write(
                    f"Celery worker (pid {background[0].pid}) and beat (pid {background[1].pid}) "
                    f"on {settings.CELERY_BROKER_URL.split('://')[0]}://"
                )
            # No autoreloader: it would restart this process and the upstreams with it.
            call_command("runserver", addrport, use_reloader=False)
        finally:
            for process in background:
                stop_background(process)
            for sim in simulators:
                sim.stop()
            signal.signal(signal.SIGTERM, previous)


def _exit_on_sigterm(signum, frame) -> None:
    raise SystemExit(128 + signum)
