"""What the failover layer costs per request, on SQLite and on PostgreSQL.

    .venv/bin/python bench/overhead.py [--requests 2000] [--rounds 5] [--threads 4]
        [--postgres URL] [--routes] [--redis URL]

With a local upstream that answers at once, it measures (median and p99 over
`--requests` calls, then the median of `--rounds` rounds):

- added:    `fallback.complete()` minus calling the adapter directly (happy path);
- threaded: the same from `--threads` threads at once (each pairs its own calls;
            on a small machine this includes waiting for the GIL and the cores);
- skip:     a request whose first provider is OPEN minus one with no such provider
            (alternating blocks of 50);
- all open: `complete()` failing because every provider is OPEN;
- tracing:  the happy path with request traces at the default
            FALLBACK_TRACE_SAMPLE_RATE minus the same with the trace recorder
            replaced by one that does nothing (call by call, medians);
- trace_write: the CPU time the batched trace writes took on the counters'
            timer thread (as in a serving process: not on the request path),
            divided by the requests that caused them, at the default rate;
- trace_all: tracing + trace_write with every answer's trace kept (rate 1);
- limits:   what the API adds per request for per-key fairness (providers_app/limits):
            taking a key's limits and giving them back, counted in that database;
- limits_redis: the same counted in Redis (with `--redis URL`; run with ample limits).

With `--routes`, three named routes of three providers each share the same
providers (a third, `spare`, sits last in every chain) and every call names the
route `bench` (blocked, answering, spare); without it no route exists and every
call follows the implicit route (the providers in the order added).

Each database runs in its own process (Django reads its settings once). Arms are
interleaved call by call so the machine's noise hits them alike. Prints a table.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HELLO = [{"role": "user", "content": "Say hello."}]
# Engineers sharing one PostgreSQL server name their scratch database apart.
SCRATCH_DB = os.environ.get("BENCH_SCRATCH_DB", "bench_fallback")
TARGETS_MS = {
    "added": 0.5,
    "threaded": 0.5,
    "skip": 0.2,
    "all_open": 5.0,
    "tracing": 0.1,
    "trace_write": 0.1,
    "trace_all": 0.1,
    "limits": 0.1,
    "limits_redis": 0.1,
}


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


def _measure(
    database_url: str,
    requests: int,
    rounds: int,
    threads: int,
    routes: bool = False,
    redis_url: str = "",
) -> dict:
    """Runs inside the child process, against `database_url`."""
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fallbackproject.settings.test")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    import logging

    logging.disable(logging.CRITICAL)
    from django.conf import settings
    from django.core.management import call_command
    from django.test import override_settings
    from django.utils import timezone

    from providers_app.adapters.schema import ChatRequest, Message
    from providers_app.conf import DEFAULTS
    from providers_app.engine import counters, fallback, route_run, tracing
    from providers_app.engine.adapter_pool import adapter_for_entry
    from providers_app.limits import acquire, key_limits
    from providers_app.models import Provider, Route
    from providers_app.selectors import route_entry_for
    from providers_app.services.client_keys import client_key_create
    from providers_app.services.routes import route_create
    from providers_app.simulator.server import UpstreamSimulator
    from providers_app.testing import breaker_state_set

    call_command("migrate", verbosity=0)
    Route.objects.all().delete()
    Provider.objects.all().delete()
    sim = UpstreamSimulator("bench").start()
    try:
        blocked = Provider.objects.create(
            name="blocked", kind="simulated", base_url=sim.base_url, model="m"
        )
        answering = Provider.objects.create(
            name="answering", kind="simulated", base_url=sim.base_url, model="m"
        )
        route = None
        if routes:
            spare = Provider.objects.create(
                name="spare", kind="simulated", base_url=sim.base_url, model="m"
            )
            route_create(name="bench", providers=[blocked, answering, spare])
            route_create(name="other", providers=[spare, answering, blocked])
            route_create(name="third", providers=[answering, blocked, spare], is_default=True)
            route = "bench"
        far = timezone.now() + timezone.timedelta(days=1)
        adapter = adapter_for_entry(route_entry_for(answering.pk))
        request = ChatRequest(messages=(Message("user", "Say hello."),))

        def timed(call) -> float:
            started = time.perf_counter()
            call()
            return (time.perf_counter() - started) * 1000

        def set_blocked(state: str, enabled: bool = True) -> None:
            Provider.objects.filter(pk=blocked.pk).update(enabled=enabled)
            breaker_state_set(blocked, state=state, open_until=far)

        def set_all(state: str, open_until) -> None:
            breaker_state_set(state=state, open_until=open_until)

        def all_open() -> None:
            try:
                fallback.complete(HELLO, model=route)
            except fallback.AllProvidersFailed:
                return
            raise AssertionError("a provider answered while all were open")

        results: dict[str, list[tuple[float, float]]] = {
            "added": [],
            "threaded": [],
            "skip": [],
            "all_open": [],
            "tracing": [],
            "trace_write": [],
            "trace_all": [],
            "limits": [],
            "limits_redis": [],
        }
        traced_class, untraced_class = route_run.TraceRecorder, _untraced_recorder()
        # The CPU time of each batch write of traces, in the thread that writes it:
        # its wall time on a busy machine is mostly waiting (for the GIL, the disk).
        written_ms: list[float] = []
        save = tracing._TraceBuffer._save

        def timed_save(traces) -> None:
            started = time.thread_time()
            save(traces)
            written_ms.append((time.thread_time() - started) * 1000)

        tracing._TraceBuffer._save = staticmethod(timed_save)

        def with_recorder(recorder_class) -> float:
            route_run.TraceRecorder = recorder_class
            try:
                return timed(lambda: fallback.complete(HELLO, model=route))
            finally:
                route_run.TraceRecorder = traced_class

        many = 10**9  # the bench measures the cost, never a refusal
        key = client_key_create(
            name=f"bench-{time.time_ns()}", max_concurrent_requests=many, requests_per_minute=many
        ).client_key

        def limited() -> None:
            acquire(key_limits(key)).release()

        for _ in range(rounds):
            # Happy path: the answering provider alone, against the bare adapter.
            set_blocked("closed", enabled=False)
            direct, routed = [], []
            for _ in range(requests):
                direct.append(timed(lambda: adapter.complete(request, timeout=5)))
                routed.append(timed(lambda: fallback.complete(HELLO, model=route)))
            results["added"].append(_difference(routed, direct))

            # The same with and without an OPEN provider to skip in front of it, in
            # alternating blocks (switching needs a write, which is not timed).
            without, with_open = [], []
            for _ in range(0, requests, 50):
                set_blocked("open")
                with_open += [
                    timed(lambda: fallback.complete(HELLO, model=route)) for _ in range(50)
                ]
                set_blocked("closed", enabled=False)
                without += [timed(lambda: fallback.complete(HELLO, model=route)) for _ in range(50)]
            results["skip"].append(_difference(with_open, without))

            # The happy path again from several threads at once, as a threaded
            # web worker runs it (each thread its own connection and timings).
            both: tuple[list[float], list[float]] = ([], [])

            def one_thread(direct=both[0], routed=both[1]) -> None:
                from django.db import connection

                mine_direct, mine_routed = [], []
                for _ in range(requests // threads):
                    mine_direct.append(timed(lambda: adapter.complete(request, timeout=5)))
                    mine_routed.append(timed(lambda: fallback.complete(HELLO, model=route)))
                direct.extend(mine_direct)
                routed.extend(mine_routed)
                connection.close()

            set_blocked("closed", enabled=False)
            pool = [threading.Thread(target=one_thread) for _ in range(threads)]
            for thread in pool:
                thread.start()
            for thread in pool:
                thread.join()
            results["threaded"].append(_difference(both[1], both[0]))

            # Tracing against no recorder: at the default rate, then every answer kept.
            set_blocked("closed", enabled=False)
            # As in a serving process (fallbackproject/wsgi.py): the counters'
            # timer thread writes the buffered traces, off the request path.
            counters.flush_in_background()
            for rate in (DEFAULTS["TRACE_SAMPLE_RATE"], 1.0):
                settings.FALLBACK_TRACE_SAMPLE_RATE = rate
                traced, untraced = [], []
                written_ms.clear()
                for _ in range(requests):
                    untraced.append(with_recorder(untraced_class))
                    traced.append(with_recorder(traced_class))
                tracing.flush_traces()  # the rest of the batch, as the timer would
                recording = _difference(traced, untraced)
                per_request = sum(written_ms) / requests
                if rate == 1.0:
                    total = recording[0] + per_request
                    results["trace_all"].append((total, total))
                else:
                    results["tracing"].append(recording)
                    results["trace_write"].append((per_request, per_request))
            counters.stop_background_flush()

            # Every provider open: fail fast.
            set_all("open", far)
            failing = [timed(all_open) for _ in range(requests)]
            results["all_open"].append((statistics.median(failing), _percentile(failing, 0.99)))
            set_all("closed", None)

            # Per-key fairness: taking and giving back one request's limits.
            held = [timed(limited) for _ in range(requests)]
            results["limits"].append((statistics.median(held), _percentile(held, 0.99)))
            if redis_url:
                with override_settings(FALLBACK_LIMITS_REDIS_URL=redis_url):
                    held = [timed(limited) for _ in range(requests)]
                results["limits_redis"].append((statistics.median(held), _percentile(held, 0.99)))
        results = {name: rows for name, rows in results.items() if rows}
        return {
            name: {
                "median_ms": statistics.median(m for m, _ in rows),
                "p99_ms": statistics.median(p for _, p in rows),
            }
            for name, rows in results.items()
        }
    finally:
        sim.stop()


def _untraced_recorder():
    """A trace recorder that records nothing: the baseline of the tracing arm."""
    from providers_app.engine.tracing import Step, TraceRecorder

    class Untraced(TraceRecorder):
        def __init__(self, request_id: str, *, streamed: bool = False):
            self.request_id, self.route, self.streamed, self.steps = request_id, "", streamed, []

        def skipped(self, provider, reason):
            pass

        def attempt_started(self, provider):
            return _STEP

        def attempt_failed(self, step, error):
            pass

        def decided(self, decision):
            pass

        def attempt_answered(self, step, *, first_output_s):
            pass

        def finish(self, outcome, *, provider="", reason=""):
            pass

    _STEP = Step("", 0.0)
    return Untraced


def _difference(slower: list[float], baseline: list[float]) -> tuple[float, float]:
    return (
        statistics.median(slower) - statistics.median(baseline),
        _percentile(slower, 0.99) - _percentile(baseline, 0.99),
    )


def _run_child(label: str, database_url: str, args) -> dict:
    out = subprocess.run(  # noqa: S603 (our own script, our own arguments)
        [
            sys.executable,
            __file__,
            "--child",
            database_url,
            "--requests",
            str(args.requests),
            "--rounds",
            str(args.rounds),
            "--threads",
            str(args.threads),
            *(["--routes"] if args.routes else []),
            *(["--redis", args.redis] if args.redis else []),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    if out.returncode != 0:
        print(f"{label}: failed\n{out.stderr[-2000:]}", file=sys.stderr)
        return {}
    return json.loads(out.stdout.strip().splitlines()[-1])


def _postgres_url(base: str) -> str | None:
    """A scratch database next to `base` (created fresh), or None if unreachable."""
    try:
        import psycopg

        with psycopg.connect(base, autocommit=True, connect_timeout=2) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {SCRATCH_DB}")
            conn.execute(f"CREATE DATABASE {SCRATCH_DB}")
    except Exception as exc:
        print(f"PostgreSQL at {base} unavailable ({exc}); skipping it.", file=sys.stderr)
        return None
    return base.rsplit("/", 1)[0] + "/" + SCRATCH_DB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432/test")
    parser.add_argument("--threads", type=int, default=4, help="threads of the threaded arm")
    parser.add_argument(
        "--routes", action="store_true", help="three routes of three providers (see above)"
    )
    parser.add_argument("--redis", default="", help="also count the limits in this Redis")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        figures = _measure(
            args.child, args.requests, args.rounds, args.threads, args.routes, args.redis
        )
        print(json.dumps(figures))
        return

    databases = [("SQLite", f"sqlite:///{tempfile.mkdtemp()}/bench.sqlite3")]
    postgres = _postgres_url(args.postgres)
    if postgres:
        databases.append(("PostgreSQL", postgres))
    layout = "three routes of three providers" if args.routes else "the global order, no route"
    print(f"{args.requests} requests x {args.rounds} rounds; {layout}; median of rounds; ms")
    print(f"{'database':<11} {'measure':<9} {'median':>8} {'p99':>8} {'target':>8}  ok")
    for label, url in databases:
        figures = _run_child(label, url, args)
        for name, target in TARGETS_MS.items():
            if name not in figures:
                continue
            row = figures[name]
            ok = "yes" if row["median_ms"] < target else "NO"
            print(
                f"{label:<11} {name:<9} {row['median_ms']:>8.3f} {row['p99_ms']:>8.3f} "
                f"{target:>8.1f}  {ok}"
            )


if __name__ == "__main__":
    main()
