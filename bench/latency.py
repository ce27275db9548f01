"""Table 1: one chat in-process, ours against a bare HTTP call and LiteLLM's Router.

    .venv/bin/python bench/latency.py [--requests 300] [--rounds 3] [--postgres URL | --no-postgres]

For each database (SQLite, then PostgreSQL in its own process), one local
upstream answering at once, and call by call in turn:

- direct:  a kept-alive `requests.Session` POST to the upstream (the floor);
- ours:    `fallback.complete()` with one provider in front of that upstream;
- litellm: `litellm.Router.completion` in front of the same upstream, timed inside
           the peer venv's process (bench/peer.py), when the peer is installed.

direct and ours take turns call by call; LiteLLM runs a block of its own in each
round (its post-call work on threads would otherwise land in our timings). Prints
median and p99 (median over rounds) and ours / litellm.
"""

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common, peer


def _measure(payload: dict) -> dict:
    """In the child: Django against payload["database_url"]."""
    common.django_setup(payload["database_url"])
    import requests

    from providers_app.engine import fallback
    from providers_app.simulator.server import UpstreamSimulator

    upstream = UpstreamSimulator("bench-latency").start()
    worker = peer.RouterWorker(payload["peer_python"]) if payload["peer_python"] else None
    try:
        common.providers_create([upstream.base_url])
        if worker:
            worker.setup([upstream.base_url], timeout_s=10)
        session = requests.Session()
        url = f"{upstream.base_url}/chat/completions"
        body = {"model": "sim", "messages": common.HELLO}

        def direct():
            response = session.post(url, json=body, timeout=10)
            response.raise_for_status()
            response.json()

        def ours():
            fallback.complete(common.HELLO)

        rounds: dict[str, list[tuple[float, float]]] = {"direct": [], "ours": [], "litellm": []}
        errors = {"direct": 0, "ours": 0, "litellm": 0}
        # Warm every path (connection pools, compiled queries, imports) before timing.
        for _ in range(20):
            direct()
            fallback.complete(common.HELLO)
        if worker:
            worker.call(20)
        for _ in range(payload["rounds"]):
            samples: dict[str, list[float]] = {"direct": [], "ours": [], "litellm": []}
            for _ in range(payload["requests"]):
                for name, call in (("direct", direct), ("ours", ours)):
                    ms, error = common.timed_ms(call)
                    samples[name].append(ms)
                    errors[name] += error is not None
            if worker:
                # A block of its own in each round, not call by call: LiteLLM finishes
                # work on threads after it returns (logging callbacks), which would
                # land in the next measurement of ours.
                for ms, error in worker.call(payload["requests"]):
                    samples["litellm"].append(ms)
                    errors["litellm"] += error is not None
            for name, values in samples.items():
                if values:
                    rounds[name].append(common.median_p99(values))
        return {
            "figures": {
                name: [statistics.median(m for m, _ in rows), statistics.median(p for _, p in rows)]
                for name, rows in rounds.items()
                if rows
            },
            "errors": errors,
            "litellm_version": worker.version if worker else None,
        }
    finally:
        if worker:
            worker.close()
        upstream.stop()


def run(args) -> str:
    python = None if args.no_peer else peer.peer_python()
    rows = []
    for label, url in common.databases(None if args.no_postgres else args.postgres):
        result = common.run_child(
            "latency.py",
            {
                "database_url": url,
                "requests": args.requests,
                "rounds": args.rounds,
                "peer_python": python,
            },
        )
        figures = result["figures"]
        direct, ours = figures["direct"], figures["ours"]
        theirs = figures.get("litellm")
        rows.append(
            [
                label,
                common.fmt(direct[0]),
                common.fmt(ours[0]),
                common.fmt(ours[0] - direct[0]),
                common.fmt(theirs[0]) if theirs else "skipped",
                common.fmt(theirs[0] - direct[0]) if theirs else "-",
                common.ratio(ours[0], theirs[0] if theirs else None),
                common.fmt(direct[1]),
                common.fmt(ours[1]),
                common.fmt(theirs[1]) if theirs else "-",
                common.ratio(ours[1], theirs[1] if theirs else None),
                f"{result['errors']['ours']}/{result['errors']['litellm']}",
            ]
        )
    text = common.table(
        f"1. In-process, one chat ({args.requests} calls x {args.rounds} rounds, ms)",
        [
            "database",
            "direct p50",
            "ours p50",
            "ours added",
            "litellm p50",
            "litellm added",
            "ratio p50",
            "direct p99",
            "ours p99",
            "litellm p99",
            "ratio p99",
            "errors ours/litellm",
        ],
        rows,
    )
    return text if python else text + "\n" + peer.SKIPPED + "\n"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=300)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--postgres", default=common.DEFAULT_POSTGRES)
    p.add_argument("--no-postgres", action="store_true")
    p.add_argument("--no-peer", action="store_true", help="our side only")
    p.add_argument("--child", help=argparse.SUPPRESS)
    return p


def main(argv=None) -> str | None:
    return common.script_main(parser(), argv, measure=_measure, run=run)


if __name__ == "__main__":
    main()
