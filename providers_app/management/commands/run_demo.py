"""`manage.py run_demo`: the whole demo in one process tree, gone on Ctrl-C.

It starts three simulated upstreams (the primary follows a fault schedule, so
failover happens by itself), a Celery worker and beat on the embedded broker,
a traffic generator sending a few chats a second through the HTTP API with the
demo key, and the web server; then prints where everything is.

The worker and beat are child processes with this process's settings and
environment (so the embedded filesystem broker unless CELERY_BROKER_URL says
otherwise); they are stopped when the web server exits, Ctrl-C and SIGTERM
included. The upstreams and the traffic are threads of this process.
"""

import contextlib
import io
import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from providers_app.conf import get_setting
from providers_app.management.demo import (
    banner,
    credentials_load,
    credentials_path,
    demo_location_arguments,
)
from providers_app.management.demo_console import (
    EventStory,
    console_quiet,
    terminal_foreground,
)
from providers_app.simulator.schedule import DEMO_SCHEDULE
from providers_app.simulator.server import demo_specs, run_simulators
from providers_app.simulator.traffic import TrafficGenerator

CELERY = (sys.executable, "-m", "celery", "-A", "fallbackproject")
# The embedded broker has no broadcast: gossip, mingle and heartbeats would only
# leave files behind. Threads: health checks wait on the network, not the CPU.
WORKER_ARGS = (
    "worker", "--loglevel", "INFO", "--pool", "threads", "--concurrency", "4",
    "--without-gossip", "--without-mingle", "--without-heartbeat",
)  # fmt: skip
BEAT_ARGS = ("beat", "--loglevel", "INFO")  # the scheduler comes from CELERY_BEAT_SCHEDULER
STOP_TIMEOUT_S = 10
TRAFFIC_RATE_PER_S = 3.0


def start_background(args: Sequence[str], *, log: Path) -> subprocess.Popen:
    """Start a Celery process writing to ``log`` (its banner and lines would bury
    the demo's terminal)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as output:  # the child keeps its own descriptor
        # Fixed argument lists of this module, never user input.
        return subprocess.Popen(  # noqa: S603
            [*CELERY, *args],
            cwd=settings.BASE_DIR,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},  # lines reach the file as they happen
            stdout=output,
            stderr=subprocess.STDOUT,
        )


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


def port_is_free(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def port_accepts(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
        return True
    return False


def web_is_up(base_url: str) -> bool:
    url = f"{base_url}/healthz"
    with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310
        return response.status == 200
    return False


class Command(BaseCommand):
    help = (
        "Start the demo upstreams (the primary follows a fault schedule), a Celery worker and "
        "beat, demo traffic, and serve on ADDRPORT."
    )

    def add_arguments(self, parser):
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000")
        parser.add_argument(
            "--no-celery",
            action="store_true",
            help="Do not start the worker and beat (no health checks or roll-ups).",
        )
        parser.add_argument(
            "--no-traffic", action="store_true", help="Do not send demo chats by itself."
        )
        parser.add_argument(
            "--no-schedule",
            action="store_true",
            help="Keep the primary healthy; faults only when set on its /_sim page.",
        )
        demo_location_arguments(parser)
        parser.add_argument("--traffic-rate", type=float, default=TRAFFIC_RATE_PER_S)

    def handle(self, *args, addrport: str, **options):
        host, _, port = addrport.rpartition(":")
        host = host or "127.0.0.1"
        # runserver exits the process without cleanup on a busy port, which
        # would orphan the worker and beat: check before starting anything.
        if not port.isdigit() or not port_is_free(host, int(port)):
            raise CommandError(f"{addrport} is not a free address (PORT=... picks another).")
        with terminal_foreground():
            self._run(f"{host}:{port}", options)

    def _run(self, web: str, options) -> None:
        # A SIGTERM (a supervisor, `kill`) must run the cleanup below like Ctrl-C
        # does; Python's default would exit at once and orphan the worker and beat.
        previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
        previous_sigint = signal.signal(signal.SIGINT, _first_ctrl_c_only)
        schedule = None if options["no_schedule"] else DEMO_SCHEDULE
        credentials_file = options["credentials"] or credentials_path()
        credentials = credentials_load(credentials_file)
        _protect_metrics(credentials)
        simulators = run_simulators(demo_specs(options["sim_port"], primary_schedule=schedule))
        background: list[subprocess.Popen] = []
        traffic: TrafficGenerator | None = None
        story = EventStory(self.stdout.write)
        stopping = threading.Event()
        stopped: list[str] = []
        try:
            for sim in simulators:
                self.stdout.write(f"Upstream {sim.name!r} on {sim.base_url}, page {_page(sim)}")
            if schedule is not None and simulators:
                self.stdout.write(f"The primary's fault schedule (see {_page(simulators[0])}):")
                for line in schedule.describe():
                    self.stdout.write(f"  {line}")
            logs = credentials_file.parent
            if not options["no_celery"]:
                background = [
                    start_background(WORKER_ARGS, log=logs / "worker.log"),
                    start_background(BEAT_ARGS, log=logs / "beat.log"),
                ]
                self.stdout.write(
                    f"Celery worker (pid {background[0].pid}) and beat (pid {background[1].pid}) "
                    f"on {settings.CELERY_BROKER_URL.split('://')[0]}://, "
                    f"logging to {logs / 'worker.log'} and {logs / 'beat.log'}"
                )
            tool_call = credentials_file.with_name("tool-call.json")
            block = banner(
                web=web,
                credentials=credentials,
                tool_call_file=tool_call if tool_call.exists() else None,
                logs=logs if background else None,
            )
            self.stdout.write("Starting the web server...")
            # The block comes last, once the server answers; the story follows it.
            ready = threading.Event()
            threading.Thread(
                target=self._when_up, args=(web, block, story, ready, stopping), daemon=True
            ).start()
            traffic = self._traffic(web, credentials, options, ready)
            # No autoreloader: it would restart this process and the upstreams with it.
            # Its banner and development-server warning would push the block away.
            call_command("runserver", web, use_reloader=False, stdout=io.StringIO())
        except KeyboardInterrupt:
            pass  # Ctrl-C before the server started: stop what did start, quietly
        except SystemExit as leaving:
            if leaving.code not in (0, None):  # a SIGTERM, or runserver failing
                raise
        finally:
            # A second Ctrl-C (or the terminal signalling the whole group) must
            # not cut the cleanup short and orphan the worker: it is bounded.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            stopping.set()
            story.disconnect()
            stopped.append("the web server")
            if traffic is not None:
                traffic.stop()
                stopped.append("the demo traffic")
            for process in background:
                stop_background(process)
            if background:
                stopped.append("the Celery worker and beat")
            for sim in simulators:
                sim.stop()
            if simulators:
                stopped.append(f"{len(simulators)} upstreams")
            signal.signal(signal.SIGTERM, previous)
            signal.signal(signal.SIGINT, previous_sigint)
            self.stdout.write(f"\nStopped: {', '.join(stopped)}.")

    def _when_up(
        self,
        web: str,
        block: list[str],
        story: EventStory,
        ready: threading.Event,
        stopping: threading.Event,
    ) -> None:
        host, _, port = web.rpartition(":")
        # runserver configures logging as it loads the application, before it
        # listens: quiet the console once it listens, before the first request
        # (even our own check below) can print a line.
        while not port_accepts(host, int(port)):
            if stopping.wait(0.1):  # the server never came up
                return
        console_quiet()
        base_url = f"http://{web}"
        while not web_is_up(base_url):
            if stopping.wait(0.2):
                return
        self.stdout.write(self.style.SUCCESS(f"\nThe demo is at {base_url}/"))
        for line in block:
            self.stdout.write(line)
        self.stdout.write(
            "\nWhat happens, one line per event (failover, breaker opened, probe, closed); "
            "Ctrl-C stops everything:"
        )
        story.connect()
        ready.set()

    def _traffic(
        self, web: str, credentials, options, ready: threading.Event
    ) -> TrafficGenerator | None:
        if options["no_traffic"]:
            self.stdout.write("No demo traffic (--no-traffic).")
            return None
        if credentials is None:
            self.stdout.write("No demo traffic: no demo key (run `manage.py demo_setup`).")
            return None
        base_url = f"http://{web}"
        self.stdout.write(
            f"Demo traffic: {options['traffic_rate']:g} chats/s with the demo key "
            "(plain, streamed, tool calls); --no-traffic turns it off."
        )
        return TrafficGenerator(
            base_url,
            credentials.client_key,
            rate_per_s=options["traffic_rate"],
            wait_for=ready.is_set,  # after the block: its lines come after it
            report=lambda line: self.stdout.write(line),
        ).start()


def _protect_metrics(credentials) -> None:
    """/metrics names providers and routes: the demo asks for a token as production
    does. FALLBACK_METRICS_TOKEN wins; else the demo's own, kept with its key.
    Set once, before the server starts, in the process that serves."""
    if credentials is not None and credentials.metrics_token and not get_setting("METRICS_TOKEN"):
        settings.FALLBACK_METRICS_TOKEN = credentials.metrics_token


def _page(sim) -> str:
    return f"http://{sim.host}:{sim.port}/_sim"


def _first_ctrl_c_only(signum, frame) -> None:
    """The first Ctrl-C stops the demo; an impatient second one (or the terminal
    signalling the whole group) must not cut the cleanup short and orphan the
    worker, so from the first on SIGINT is ignored."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


def _exit_on_sigterm(signum, frame) -> None:
    raise SystemExit(128 + signum)
