"""Tables 2 and 6, memory and start-up: our HTTP API against LiteLLM's proxy.

    .venv/bin/python bench/serving.py [--requests 500] [--down-requests 30] [--budget 30]

Our side is the documented production server, `gunicorn -c
fallbackproject/gunicorn.conf.py fallbackproject.wsgi` (production settings, one
worker, so "one web worker" is the one that served every request), with a client
key; LiteLLM's side is its proxy (bench/peer.py) with its defaults, and with the
tuned router settings for table 6. Both sit in front of the same two local
upstreams; one client with a kept-alive `requests.Session` per server.

2. One client, in blocks taking turns across direct (the upstream itself), ours
   and LiteLLM: median, p99, added over direct, ours / LiteLLM.
6. Every provider answering 503: time to the error answer, per server, until
   `--down-requests` requests or `--budget` seconds; the status it answered.
M. Resident size (RSS) of the serving process after 1000 chat requests, and
   start-up: from spawning the server to its first chat answer.
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common, peer


class _Client:
    """One kept-alive session to one chat endpoint."""

    def __init__(self, name: str, url: str, token: str | None, model: str):
        import requests

        self.name = name
        self.url = url
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"
        self.body = {"model": model, "messages": common.HELLO}
        self.served = 0

    def call(self) -> tuple[float, int]:
        started = time.perf_counter()
        response = self.session.post(self.url, json=self.body, timeout=120)
        response.content  # noqa: B018 (read the whole body inside the timing)
        self.served += 1
        return (time.perf_counter() - started) * 1000, response.status_code


def _first_answer_s(client: _Client, spawned_at: float) -> float:
    common.wait_until(lambda: client.call()[1] == 200, timeout_s=120)
    return time.monotonic() - spawned_at


def _one_client(clients: list[_Client], requests: int, rounds: int = 5) -> dict:
    """Each server in turn, a block of requests/rounds at a time, `rounds` times.

    Blocks, not call by call: LiteLLM's proxy keeps working after it answers
    (logging and spend-tracking tasks), and that work would land in the next
    request of whichever server came after it. The first calls of each block are
    not timed, so a block starts on a quiet machine.
    """
    samples: dict[str, list[float]] = {client.name: [] for client in clients}
    errors = {client.name: 0 for client in clients}
    block = max(requests // rounds, 1)
    for _ in range(rounds):
        for client in clients:
            for _ in range(5):
                client.call()
            for _ in range(block):
                ms, status = client.call()
                samples[client.name].append(ms)
                errors[client.name] += status != 200
    return {
        name: {"p50": m, "p99": p, "errors": errors[name]}
        for name, values in samples.items()
        for m, p in [common.median_p99(values)]
    }


def _all_down(clients: list[_Client], requests: int, budget_s: float) -> dict:
    found = {}
    calls: dict[str, list[tuple[float, int]]] = {client.name: [] for client in clients}
    spent = {client.name: 0.0 for client in clients}
    for _ in range(requests):
        for client in clients:
            if spent[client.name] < budget_s:
                ms, status = client.call()
                calls[client.name].append((ms, status))
                spent[client.name] += ms / 1000
    for name, rows in calls.items():
        latencies = [ms for ms, _ in rows]
        median, p99 = common.median_p99(latencies)
        found[name] = {
            "requests": len(rows),
            "budget_hit": spent[name] >= budget_s,
            "first_ms": latencies[0] if latencies else None,
            "p50": median,
            "p99": p99,
            "statuses": sorted({status for _, status in rows}),
        }
    return found


def _measure(payload: dict) -> dict:
    common.django_setup(payload["database_url"])
    from providers_app.simulator.server import UpstreamSimulator

    upstreams = [UpstreamSimulator("primary").start(), UpstreamSimulator("secondary").start()]
    urls = [u.base_url for u in upstreams]
    common.providers_create(urls)
    token = common.client_key()
    result: dict = {"startup_s": {}, "rss_mb": {}}
    proxies: list = []
    try:
        with common.gunicorn_server(payload["database_url"], workers=1) as server:
            ours = _Client("ours", f"{server['base_url']}/v1/chat/completions", token, "default")
            result["startup_s"]["ours"] = _first_answer_s(ours, server["spawned_at"])
            direct = _Client("direct", f"{urls[0]}/chat/completions", None, "sim")
            clients = [direct, ours]
            servers = {"ours": server["process"]}
            if payload["peer_python"]:
                proxy = peer.LiteLLMProxy(urls, python=payload["peer_python"]).start()
                proxies.append(proxy)
                result["startup_s"]["litellm"] = proxy.startup_s
                theirs = _Client(
                    "litellm",
                    f"{proxy.base_url}/v1/chat/completions",
                    proxy.master_key,
                    proxy.model,
                )
                clients.append(theirs)
                result["litellm_version"] = peer.peer_version(payload["peer_python"])

            result["one_client"] = _one_client(clients, payload["requests"])

            for client in clients[1:]:
                while client.served < payload["memory_after"]:
                    client.call()
            (worker,) = common.children_of(servers["ours"].pid)  # one worker, see docstring
            result["rss_mb"]["ours"] = common.rss_mb(worker)
            if proxies:
                result["rss_mb"]["litellm"] = sum(
                    common.rss_mb(pid) or 0 for pid in proxies[0].pids
                )

            down_clients = [ours]
            if payload["peer_python"]:
                tuned = peer.LiteLLMProxy(urls, python=payload["peer_python"], tuned=True).start()
                proxies.append(tuned)
                down_clients += [
                    _Client(
                        "litellm defaults",
                        f"{proxies[0].base_url}/v1/chat/completions",
                        proxies[0].master_key,
                        proxies[0].model,
                    ),
                    _Client(
                        "litellm tuned",
                        f"{tuned.base_url}/v1/chat/completions",
                        tuned.master_key,
                        tuned.model,
                    ),
                ]
            for upstream in upstreams:
                upstream.set_fault("error", status=503, message="Service Unavailable")
            result["all_down"] = _all_down(
                down_clients, payload["down_requests"], payload["budget_s"]
            )
        return result
    finally:
        for proxy in proxies:
            proxy.stop()
        for upstream in upstreams:
            upstream.stop()


def run(args) -> str:
    python = None if args.no_peer else peer.peer_python()
    result = common.run_child(
        "serving.py",
        {
            "database_url": common.sqlite_url(),
            "requests": args.requests,
            "down_requests": args.down_requests,
            "budget_s": args.budget,
            "memory_after": args.memory_after,
            "peer_python": python,
        },
    )
    one = result["one_client"]
    direct = one["direct"]
    rows = []
    for name in ("ours", "litellm"):
        if name not in one:
            continue
        row = one[name]
        rows.append(
            [
                name,
                common.fmt(row["p50"]),
                common.fmt(row["p99"]),
                common.fmt(row["p50"] - direct["p50"]),
                common.fmt(row["p99"] - direct["p99"]),
                row["errors"],
                common.ratio(one["ours"]["p50"], row["p50"]) if name != "ours" else "-",
                common.ratio(one["ours"]["p99"], row["p99"]) if name != "ours" else "-",
            ]
        )
    rows.insert(0, ["direct (upstream)", common.fmt(direct["p50"]), common.fmt(direct["p99"])])
    rows[0] += ["-"] * 5
    text = common.table(
        f"2. Over HTTP, one client, {args.requests} requests each, ms (ratio: ours / that row)",
        ["server", "p50", "p99", "added p50", "added p99", "errors", "ratio p50", "ratio p99"],
        rows,
    )

    down = result["all_down"]
    ours = down["ours"]
    down_rows = []
    for name, row in down.items():
        done = f"{row['requests']}" + (" (budget)" if row["budget_hit"] else "")
        down_rows.append(
            [
                name,
                done,
                ",".join(str(s) for s in row["statuses"]),
                common.fmt(row["first_ms"], 1),
                common.fmt(row["p50"], 1),
                common.fmt(row["p99"], 1),
                "-" if name == "ours" else common.ratio(ours["p50"], row["p50"]),
            ]
        )
    text += "\n" + common.table(
        "6. Every provider answers 503: time to the error answer, ms (ratio: ours / that row)",
        ["server", "requests", "status", "first", "p50", "p99", "ratio p50"],
        down_rows,
    )

    rss, startup = result["rss_mb"], result["startup_s"]
    text += "\n" + common.table(
        f"M. One serving process after {args.memory_after} chats; start-up to first answer",
        ["measure", "ours", "litellm", "ratio"],
        [
            [
                "RSS (MB)",
                common.fmt(rss.get("ours"), 1),
                common.fmt(rss.get("litellm"), 1) if "litellm" in rss else "skipped",
                common.ratio(rss.get("ours"), rss.get("litellm")),
            ],
            [
                "start-up to first answer (s)",
                common.fmt(startup.get("ours")),
                common.fmt(startup.get("litellm")) if "litellm" in startup else "skipped",
                common.ratio(startup.get("ours"), startup.get("litellm")),
            ],
        ],
    )
    return text if python else text + "\n" + peer.SKIPPED + "\n"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=500)
    p.add_argument("--down-requests", type=int, default=30)
    p.add_argument("--budget", type=float, default=30.0, help="seconds one server may spend (6)")
    p.add_argument("--memory-after", type=int, default=1000, help="chats before reading RSS")
    p.add_argument("--no-peer", action="store_true", help="our side only")
    p.add_argument("--child", help=argparse.SUPPRESS)
    return p


def main(argv=None) -> str | None:
    return common.script_main(parser(), argv, measure=_measure, run=run)


if __name__ == "__main__":
    main()
