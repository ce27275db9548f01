"""What the failover layer costs per request, on SQLite and on PostgreSQL.

    .venv/bin/python bench/overhead.py [--requests 2000] [--rounds 5] [--threads 4]
        [--postgres URL] [--routes]

With a local upstream that answers at once, it measures (median and p99 over
`--requests` calls, then the median of `--rounds` rounds):

- added:    `fallback.complete()` minus calling the adapter directly (happy path);
- threaded: the same from `--threads` threads at once (each pairs its own calls;
            on a small machine this includes waiting for the GIL and the cores);
- skip:     a request whose first provider is OPEN minus one with no such provider
            (alternating blocks of 50);
- all open: `complete()` failing because every provider is OPEN.

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
TARGETS_MS = {"added": 0.5, "threaded": 0.5, "skip": 0.2, "all_open": 5.0}


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


def _measure(
    database_url: str, requests: int, rounds: int, threads: int, routes: bool = False
) -> dict:
    """Runs inside the child process, against `database_url`."""
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fallbackproject.settings.test")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    import logging

    logging.disable(logging.CRITICAL)
    from django.core.management import call_command
    from django.utils import timezone

    from providers_app.adapters.schema import ChatRequest, Message
    from providers_app.engine import fallback
    from providers_app.engine.adapter_pool import adapter_for_entry
    from providers_app.models import Provider, Route
    from providers_app.selectors import route_entry_for
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
        }
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

            # Every provider open: fail fast.
            set_all("open", far)
            failing = [timed(all_open) for _ in range(requests)]
            results["all_open"].append((statistics.median(failing), _percentile(failing, 0.99)))
            set_all("closed", None)
        return {
            name: {
                "median_ms": statistics.median(m for m, _ in rows),
                "p99_ms": statistics.median(p for _, p in rows),
            }
            for name, rows in results.items()
        }
    finally:
        sim.stop()


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
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        figures = _measure(args.child, args.requests, args.rounds, args.threads, args.routes)
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
