"""Every side-by-side table in one run: `.venv/bin/python bench/all.py [--no-peer]`.

Prints the machine (cores, load average before and after: other processes sharing
the cores move absolute figures, so compare the ratios of one run), the LiteLLM
version, then tables 1, 2, 4, 5, 6 and memory/start-up (table 3, concurrency, is
bench/concurrency.py). Markdown, so a run pastes into docs/benchmarks.md.
"""

import argparse
import datetime
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import faults, latency, peer, serving


def machine() -> str:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; {os.cpu_count()} cores "
        f"(nproc); load average {load}; Python {platform.python_version()}"
    )


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--no-peer", action="store_true", help="our side only")
    p.add_argument("--quick", action="store_true", help="a few requests per table (smoke run)")
    args = p.parse_args(argv)
    python = None if args.no_peer else peer.peer_python()
    version = peer.peer_version(python) if python else None
    print(f"Machine: {machine()}")
    print(f"Peer: litellm {version} (bench/.peer-venv)" if version else peer.SKIPPED)
    print()
    extra = ["--no-peer"] if args.no_peer else []
    runs = [
        (latency, ["--requests", "20", "--rounds", "1"] if args.quick else []),
        (
            serving,
            ["--requests", "20", "--down-requests", "3", "--budget", "5"] if args.quick else [],
        ),
        (faults, ["--requests", "10", "--budget", "5", "--window", "2"] if args.quick else []),
    ]
    started = time.monotonic()
    for module, options in runs:
        module.main([*options, *extra])
        sys.stdout.flush()
    print(f"Machine after the run: {machine()}; took {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
