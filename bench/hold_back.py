"""Time to the first token with and without hold-back (docs/engine.md, "Automatic hold-back").

    .venv/bin/python bench/hold_back.py [--runs 7] [--chunk-delay 0.02] [--words 60]

A healthy 60-word streamed answer from a local simulated upstream that sends one
word every `--chunk-delay` seconds (0.02 s: 50 words a second, a brisk model),
through the HTTP API (Django's test client, streaming). Four routes, each over
the same two providers (a primary and a fallback):

- live: the default, the answer streams as it is written;
- hold_back: `Route.hold_back`, every stream is read whole before it is sent;
- auto, fallback continues: `Route.auto_hold_back` with a fallback whose
  continuation dialect is trailing_assistant: streams live;
- auto, nobody continues: the fallback's dialect is none: held back.

Prints the median time to the first content chunk and to the end of the
stream over `--runs` requests per route. A temporary SQLite database.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HELLO = [{"role": "user", "content": "Tell me a story."}]


def _setup() -> None:
    os.environ["DATABASE_URL"] = f"sqlite:///{tempfile.mkdtemp()}/hold_back.sqlite3"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fallbackproject.settings.test")
    os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "testserver")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    import logging

    logging.disable(logging.CRITICAL)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--chunk-delay", type=float, default=0.02)
    parser.add_argument("--words", type=int, default=60)
    args = parser.parse_args()
    _setup()

    from django.test import Client

    from bench.common import table
    from providers_app.models import Provider
    from providers_app.services.client_keys import client_key_create
    from providers_app.services.routes import route_create
    from providers_app.simulator.server import UpstreamSimulator

    answer = " ".join(f"word{n}" for n in range(1, args.words + 1))
    client = Client(headers={"Authorization": f"Bearer {client_key_create(name='b').raw_key}"})

    def timed(route: str) -> tuple[float, float]:
        body = {"model": route, "messages": HELLO, "stream": True}
        started = time.perf_counter()
        response = client.post(
            "/v1/chat/completions", json.dumps(body), content_type="application/json"
        )
        first = None
        text = []
        for piece in response.streaming_content:
            for line in piece.decode().splitlines():
                if not line.startswith("data: {"):
                    continue
                for choice in json.loads(line[6:]).get("choices", []):
                    content = choice.get("delta", {}).get("content")
                    if content:
                        first = first or time.perf_counter()
                        text.append(content)
        ended = time.perf_counter()
        assert "".join(text) == answer, "".join(text)[:80]
        return (first - started) * 1000, (ended - started) * 1000

    with UpstreamSimulator("primary") as primary, UpstreamSimulator("fallback") as fallback:
        primary.set_fault("ok", text=answer, chunk_delay_s=args.chunk_delay)
        providers = {}
        for name, sim in (("primary", primary), ("fb", fallback)):
            providers[name] = Provider.objects.create(
                name=name, kind="openai_compatible", base_url=sim.base_url, model="m",
                continuation="none",
            )  # fmt: skip
        continuer = Provider.objects.create(
            name="continuer", kind="openai_compatible", base_url=fallback.base_url,
            model="m", continuation="trailing_assistant",
        )  # fmt: skip
        first, none_fb = providers["primary"], providers["fb"]
        route_create(name="live", providers=[first, none_fb])
        route_create(name="hold_back", providers=[first, none_fb], hold_back=True)
        route_create(name="auto_continues", providers=[first, continuer], auto_hold_back=True)
        route_create(name="auto_nobody", providers=[first, none_fb], auto_hold_back=True)

        rows = []
        for route, label in (
            ("live", "live (default)"),
            ("hold_back", "hold_back"),
            ("auto_continues", "auto_hold_back, fallback continues"),
            ("auto_nobody", "auto_hold_back, nobody continues"),
        ):
            timed(route)  # warm the connection pool and the routing snapshot
            samples = [timed(route) for _ in range(args.runs)]
            rows.append(
                (
                    label,
                    f"{statistics.median(s[0] for s in samples):.0f}",
                    f"{statistics.median(s[1] for s in samples):.0f}",
                )
            )
    print(
        table(
            f"{args.words}-word stream, one word every {args.chunk_delay:g} s, "
            f"median of {args.runs} (load average {os.getloadavg()[0]:.2f})",
            ("route", "first token (ms)", "whole answer (ms)"),
            rows,
        )
    )


if __name__ == "__main__":
    main()
