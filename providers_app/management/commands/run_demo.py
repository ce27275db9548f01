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
import logging
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from providers_app.management.demo import banner, credentials_load, credentials_path
from providers_app.simulator.schedule import DEMO_SCHEDULE
from providers_app.simulator.server import DEMO_FIRST_PORT, demo_specs, run_simulators
from providers_app.simulator.traffic import TrafficGenerator

CELERY = (sys.executable, "-m", "celery", "-A", "fallbackproject")
# The embedded broker has no broadcast: gossip, mingle and heartbeats would only
# leave files behind. Threads: health checks wait on the network, not the CPU.
WORKER_ARGS = (
    "worker", "--loglevel", "WARNING", "--pool", "threads", "--concurrency", "4",
    "--without-gossip", "--without-mingle", "--without-heartbeat",
)  # fmt: skip
BEAT_ARGS = ("beat", "--loglevel", "WARNING")  # the scheduler comes from CELERY_BEAT_SCHEDULER
STOP_TIMEOUT_S = 10
TRAFFIC_RATE_PER_S = 3.0


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


def port_is_free(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


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
        parser.add_argument(
            "--sim-port",
            type=int,
            default=DEMO_FIRST_PORT,
            help="Port of the primary upstream; the secondary and tertiary use the next two.",
        )
        parser.add_argument(
            "--credentials",
            type=Path,
            default=None,
            help="Where the demo's password and key are kept (default var/demo/credentials.json).",
        )
        parser.add_argument("--traffic-rate", type=float, default=TRAFFIC_RATE_PER_S)

    def handle(self, *args, addrport: str, **options):
        host, _, port = addrport.rpartition(":")
        host = host or "127.0.0.1"
        # runserver exits the process without cleanup on a busy port, which
        # would orphan the worker and beat: check before starting anything.
        if not port.isdigit() or not port_is_free(host, int(port)):
            raise CommandError(f"{addrport} is not a free address (PORT=... picks another).")
        # A SIGTERM (a supervisor, `kill`) must run the cleanup below like Ctrl-C
        # does; Python's default would exit at once and orphan the worker and beat.
        previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
        previous_sigint = signal.getsignal(signal.SIGINT)
        schedule = None if options["no_schedule"] else DEMO_SCHEDULE
        simulators = run_simulators(demo_specs(options["sim_port"], primary_schedule=schedule))
        background: list[subprocess.Popen] = []
        traffic: TrafficGenerator | None = None
        try:
            for sim in simulators:
                self.stdout.write(f"Upstream {sim.name!r} on {sim.base_url}, page {_page(sim)}")
            if schedule is not None and simulators:
                self.stdout.write(f"The primary's fault schedule (see {_page(simulators[0])}):")
                for line in schedule.describe():
                    self.stdout.write(f"  {line}")
            if not options["no_celery"]:
                background = [start_background(WORKER_ARGS), start_background(BEAT_ARGS)]
                self.stdout.write(
                    f"Celery worker (pid {background[0].pid}) and beat (pid {background[1].pid}) "
                    f"on {settings.CELERY_BROKER_URL.split('://')[0]}://"
                )
            credentials = credentials_load(options["credentials"])
            web = f"{host}:{port}"
            self.stdout.write(self.style.SUCCESS(f"\nThe demo is at http://{web}/"))
            tool_call = (options["credentials"] or credentials_path()).with_name("tool-call.json")
            lines = banner(
                web=web,
                credentials=credentials,
                tool_call_file=tool_call if tool_call.exists() else None,
            )
            for line in lines:
                self.stdout.write(line)
            traffic = self._traffic(web, credentials, options)
            self.stdout.write("Ctrl-C stops everything.\n")
            # No autoreloader: it would restart this process and the upstreams with it.
            call_command("runserver", addrport, use_reloader=False)
        finally:
            # A second Ctrl-C (or the terminal signalling the whole group) must
            # not cut the cleanup short and orphan the worker: it is bounded.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            if traffic is not None:
                traffic.stop()
            for process in background:
                stop_background(process)
            for sim in simulators:
                sim.stop()
            signal.signal(signal.SIGTERM, previous)
            signal.signal(signal.SIGINT, previous_sigint)

    def _traffic(self, web: str, credentials, options) -> TrafficGenerator | None:
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
            wait_for=lambda: web_is_up(base_url) and _quiet_request_log(),
            report=lambda line: self.stdout.write(line),
        ).start()


def _quiet_request_log() -> bool:
    """Three request lines a second would bury everything else; 4xx and 5xx still show.

    Called once the server answers: runserver configures logging again when it
    loads the WSGI application, which would undo an earlier setting.
    """
    logging.getLogger("django.server").setLevel(logging.WARNING)
    return True


def _page(sim) -> str:
    return f"http://{sim.host}:{sim.port}/_sim"


def _exit_on_sigterm(signum, frame) -> None:
    raise SystemExit(128 + signum)
