"""Tables 4 and 5: a failing primary, ours against LiteLLM's Router (defaults and tuned).

    .venv/bin/python bench/faults.py [--requests 200] [--timeout 1] [--budget 60] [--window 10]

In-process on both sides (`fallback.complete()` against `litellm.Router.completion`
in the peer venv), each arm with its own two local upstreams (a primary and a
healthy secondary) and fresh state (new provider rows and breakers; a new Router).

4. The primary down three ways, `--requests` client requests per arm, one arm
   after the other (each has its own upstreams and state): refused (nothing
   listens), 503 (every answer), silent (accepts and never answers, so every
   attempt waits out the `--timeout` attempt timeout that both sides are given).
   Per arm: client latency (median, p99), requests that reached the primary (the
   upstream counts them; a refused connection reaches nothing, so none are
   counted), requests that paid a timeout (latency at least the attempt timeout).
   An arm stops early when it has spent `--budget` seconds.
5. The primary answering 429 with `Retry-After: --window`: each arm sends requests
   back to back for one window (its own clock, so arms run one after another) and
   counts the requests that reached the primary during it.

Settings are the production defaults; LiteLLM "tuned" is bench/peer.py ROUTER_TUNED.
"""

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common, peer

MODES = ("refused", "503", "silent")


class _OurArm:
    name = "ours"

    def __init__(self, upstreams, timeout_s):
        from providers_app.engine import fallback

        self._complete = fallback.complete
        common.providers_create([u.base_url for u in upstreams], timeout_s=timeout_s)

    def call(self) -> tuple[float, str | None]:
        ms, error = common.timed_ms(lambda: self._complete(common.HELLO))
        return ms, type(error).__name__ if error else None


class _PeerArm:
    def __init__(self, worker, upstreams, timeout_s, *, tuned):
        self.name = "litellm tuned" if tuned else "litellm defaults"
        self._worker = worker
        worker.setup(
            [u.base_url for u in upstreams], timeout_s=timeout_s, tuned=tuned, name=self.name
        )

    def call(self) -> tuple[float, str | None]:
        ((ms, error),) = self._worker.call(1, name=self.name)
        return ms, error


def _arms(worker, make_upstreams, timeout_s):
    """(arm, primary, secondary) for ours and each LiteLLM configuration."""
    arms = []
    kinds = [("ours", None)]
    if worker:
        kinds += [("peer", False), ("peer", True)]
    for kind, tuned in kinds:
        primary, secondary = make_upstreams()
        upstreams = [primary, secondary]
        if kind == "ours":
            arm = _OurArm(upstreams, timeout_s)
        else:
            arm = _PeerArm(worker, upstreams, timeout_s, tuned=tuned)
        arms.append((arm, primary, secondary))
    return arms


def _break(primary, mode: str) -> None:
    if mode == "refused":
        primary.stop()
    elif mode == "503":
        primary.set_fault("error", status=503, message="Service Unavailable")
    elif mode == "silent":
        primary.set_fault("hang")
    else:
        raise ValueError(f"unknown mode {mode!r}")


def _row(mode, arm, calls, primary, timeout_s, budget_hit):
    latencies = [ms for ms, _ in calls]
    median, p99 = common.median_p99(latencies)
    return {
        "mode": mode,
        "arm": arm.name,
        "requests": len(calls),
        "failed": sum(1 for _, error in calls if error),
        "median_ms": median,
        "p99_ms": p99,
        "reached_primary": None if mode == "refused" else primary.request_count,
        # Only a silent upstream makes an attempt wait out its timeout; elsewhere a
        # slow request is retries and backoff, not a timeout.
        "paid_timeout": (
            sum(1 for ms in latencies if ms >= timeout_s * 1000 * 0.95)
            if mode == "silent"
            else None
        ),
        "budget_hit": budget_hit,
    }


def _measure(payload: dict) -> dict:
    common.django_setup(payload["database_url"])
    from providers_app.simulator.server import UpstreamSimulator

    timeout_s = payload["timeout_s"]
    worker = peer.RouterWorker(payload["peer_python"]) if payload["peer_python"] else None
    started: list = []

    def make_upstreams():
        pair = (UpstreamSimulator("primary").start(), UpstreamSimulator("secondary").start())
        started.extend(pair)
        return pair

    rows = []
    try:
        for mode in payload["modes"]:
            arms = _arms(worker, make_upstreams, timeout_s)
            for arm, primary, _ in arms:
                arm.call()  # one healthy call first: connections and caches warm
                primary.reset()
                _break(primary, mode)
            calls = {arm.name: [] for arm, _, _ in arms}
            spent = {arm.name: 0.0 for arm, _, _ in arms}
            # One arm after the other, not call by call: LiteLLM keeps working on
            # threads after it returns, which would land in our next timing.
            for arm, _, _ in arms:
                for _ in range(payload["requests"]):
                    if spent[arm.name] >= payload["budget_s"]:
                        break
                    ms, error = arm.call()
                    calls[arm.name].append((ms, error))
                    spent[arm.name] += ms / 1000
            for arm, primary, _ in arms:
                budget_hit = spent[arm.name] >= payload["budget_s"]
                rows.append(_row(mode, arm, calls[arm.name], primary, timeout_s, budget_hit))
            for simulator in started:
                simulator.stop()
            started.clear()

        if payload["window_s"]:
            window = payload["window_s"]
            for arm, primary, _ in _arms(worker, make_upstreams, timeout_s):
                arm.call()
                primary.reset()
                primary.set_fault("rate_limit", retry_after=str(math.ceil(window)))
                calls = []
                began = time.monotonic()
                while time.monotonic() - began < window and len(calls) < payload["requests"]:
                    calls.append(arm.call())
                row = _row("rate_limit", arm, calls, primary, timeout_s, False)
                row["paid_timeout"] = None
                rows.append(row)
        return {"rows": rows, "litellm_version": worker.version if worker else None}
    finally:
        for simulator in started:
            simulator.stop()
        if worker:
            worker.close()


def _ratios(rows: list[dict]) -> None:
    """Each row's ours / that LiteLLM configuration (ours' own row says "-")."""
    ours = {row["mode"]: row for row in rows if row["arm"] == "ours"}
    for row in rows:
        base = ours[row["mode"]]
        if row["arm"] == "ours":
            row["ratio"] = "-"
            continue
        row["ratio"] = (
            f"{common.ratio(base['median_ms'], row['median_ms'])} p50, "
            f"{common.ratio(base['hits_per_request'], row['hits_per_request'])} hits/request"
        )


def run(args) -> str:
    python = None if args.no_peer else peer.peer_python()
    result = common.run_child(
        "faults.py",
        {
            "database_url": common.sqlite_url(),
            "requests": args.requests,
            "timeout_s": args.timeout,
            "budget_s": args.budget,
            "window_s": args.window,
            "modes": list(args.modes),
            "peer_python": python,
        },
    )
    rows = result["rows"]
    for row in rows:
        hits = row["reached_primary"]
        row["hits_per_request"] = None if hits is None else hits / max(row["requests"], 1)
    _ratios(rows)

    def cells(row, *, timeouts=True):
        done = f"{row['requests']}" + (" (budget)" if row["budget_hit"] else "")
        cells = [
            row["mode"],
            row["arm"],
            done,
            row["failed"],
            common.fmt(row["median_ms"], 1),
            common.fmt(row["p99_ms"], 1),
            "-" if row["reached_primary"] is None else row["reached_primary"],
            common.fmt(row["hits_per_request"]),
        ]
        if timeouts:
            cells.append("-" if row["paid_timeout"] is None else row["paid_timeout"])
        return [*cells, row["ratio"]]

    head = [
        "primary",
        "arm",
        "requests",
        "failed",
        "p50 ms",
        "p99 ms",
        "reached primary",
        "per request",
    ]
    text = common.table(
        f"4. Primary down, {args.requests} requests, attempt timeout {args.timeout:g} s "
        f"(ratio: ours / that row)",
        [*head, "paid a timeout", "ratio"],
        [cells(row) for row in rows if row["mode"] != "rate_limit"],
    )
    limited = [row for row in rows if row["mode"] == "rate_limit"]
    if limited:
        text += "\n" + common.table(
            f"5. Primary answers 429 with Retry-After: {args.window:g} s, requests sent "
            f"back to back for {args.window:g} s (ratio: ours / that row)",
            [*head, "ratio"],
            [cells(row, timeouts=False) for row in limited],
        )
    return text if python else text + "\n" + peer.SKIPPED + "\n"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=200)
    p.add_argument("--timeout", type=float, default=1.0, help="attempt timeout, both sides")
    p.add_argument("--budget", type=float, default=60.0, help="seconds one arm may spend")
    p.add_argument("--window", type=float, default=10.0, help="Retry-After of table 5; 0 skips")
    p.add_argument("--modes", nargs="*", default=MODES, choices=MODES)
    p.add_argument("--no-peer", action="store_true", help="our side only")
    p.add_argument("--child", help=argparse.SUPPRESS)
    return p


def main(argv=None) -> str | None:
    return common.script_main(parser(), argv, measure=_measure, run=run)


if __name__ == "__main__":
    main()
