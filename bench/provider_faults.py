"""Time to the answer and attempts per provider for common provider faults.

    .venv/bin/python bench/provider_faults.py [--runs 1] [--only NAME ...]

Each row drives one fault through the HTTP API (`POST /v1/chat/completions`
with Django's test client) against two local simulated upstreams, primary
faulty and secondary healthy, with the default FALLBACK_ settings and providers
with the model's defaults (30 s attempt timeout, two attempts). Real time,
except the outage row, which steps a FakeClock every 4 s through a 60 s outage.
Prints, per row: HTTP status, who answered, time to the answer (median of
`--runs`), and how many requests each upstream saw. The stream rows (both
upstreams answer the same 60-word text; the secondary is of kind `simulated`,
which can continue a partial answer) also print who finished the answer
(`x_fallback.provider` on the last chunk) and whether the client got the whole
answer. A temporary SQLite
database; nothing else is touched.
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
HELLO = [{"role": "user", "content": "Say hello."}]
ANSWER = " ".join(f"word{n}" for n in range(1, 61))  # 60 stream chunks
CONTEXT_LENGTH = {
    "status": 400,
    "message": "This model's maximum context length is 8192 tokens.",
    "type": "invalid_request_error",
    "code": "context_length_exceeded",
}


def _setup():
    os.environ["DATABASE_URL"] = f"sqlite:///{tempfile.mkdtemp()}/faults.sqlite3"
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
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--only", nargs="*")
    args = parser.parse_args()
    _setup()

    from django.test import Client

    from providers_app.engine.clock import FakeClock, set_clock
    from providers_app.models import Provider
    from providers_app.services.client_keys import client_key_create
    from providers_app.simulator.server import UpstreamSimulator
    from providers_app.testing import process_state_reset

    key = client_key_create(name="bench").raw_key
    client = Client(headers={"Authorization": f"Bearer {key}"})

    def post(stream: bool, **extra):
        body = {"model": "fallback", "messages": HELLO, "stream": stream, **extra}
        response = client.post(
            "/v1/chat/completions", json.dumps(body), content_type="application/json"
        )
        response.stream_text, response.finished_by = None, None
        if stream and response.status_code == 200:
            text = []  # the whole answer
            for line in b"".join(response.streaming_content).decode().splitlines():
                if not line.startswith("data: {"):
                    continue
                event = json.loads(line[6:])
                for choice in event.get("choices", []):
                    text.append(choice.get("delta", {}).get("content") or "")
                if "x_fallback" in event:
                    response.finished_by = event["x_fallback"]["provider"]
            response.stream_text = "".join(text)
        return response

    def fresh(primary, secondary):
        Provider.objects.all().delete()
        process_state_reset()
        primary.reset()
        secondary.reset()
        Provider.objects.create(
            name="primary", kind="openai_compatible", base_url=primary.base_url, model="m",
        )  # fmt: skip
        Provider.objects.create(
            name="secondary", kind="simulated", base_url=secondary.base_url, model="m",
        )  # fmt: skip

    def timed(stream, fault, **options):
        def run(primary, secondary):
            primary.set_fault(fault, **options)
            started = time.monotonic()
            response = post(stream)
            return response, time.monotonic() - started

        return run

    def stream_row(fault, options, secondary_fault="ok", **extra):
        """A committed stream's fault; both upstreams answer ANSWER."""

        def run(primary, secondary):
            primary.set_fault(fault, text=ANSWER, **options)
            if secondary_fault == "ok":
                secondary.set_fault("ok", text=ANSWER)
            else:
                secondary.set_fault(secondary_fault)
            started = time.monotonic()
            response = post(True, **extra)
            return response, time.monotonic() - started

        return run

    def outage(primary, secondary):
        """503 for 60 s, then healthy; a request every 4 s: seconds after the
        recovery until the primary answers again."""
        clock = FakeClock()
        previous = set_clock(clock)
        try:
            primary.set_fault("error", status=503)
            for second in range(0, 200, 4):
                if second == 60:
                    primary.set_fault("ok")
                response = post(False)
                if second >= 60 and response.get("X-Fallback-Provider") == "primary":
                    return response, float(second - 60)
                clock.advance(4)
            return response, float("inf")
        finally:
            set_clock(previous)

    rows = {
        "silent (stream)": timed(True, "hang"),
        "silent (no stream)": timed(False, "hang"),
        "first token at 20 s": timed(True, "slow_first_token", delay_s=20, interval_s=0.5),
        "context length, no windows": timed(False, "error", **CONTEXT_LENGTH),
        "503 for 60 s, recovery (s after)": outage,
        "429 Retry-After: 2, then fine": lambda p, s: timed(
            False,
            "sequence",
            steps=[{"mode": "rate_limit", "options": {"retry_after": "2"}}, {"mode": "ok"}],
        )(p, s),
        "503 Retry-After: 30": timed(False, "error", status=503, retry_after="30"),
        "2xx JSON 5000 deep": timed(False, "garbage", body="[" * 5000 + "]" * 5000),
        "stream cut after 40 of 60 tokens": stream_row("truncate_stream", {"chunks": 40}),
        "stream stalls 30 s after 20 tokens": stream_row(
            "stall_stream", {"chunks": 20, "seconds": 30}
        ),
        "stream cut, the fallback rejects the prefill": stream_row(
            "truncate_stream", {"chunks": 40}, secondary_fault="reject_prefill"
        ),
        "stream cut, hold-back": stream_row(
            "truncate_stream", {"chunks": 40}, x_fallback_hold_back=True
        ),
    }
    with UpstreamSimulator("primary") as primary, UpstreamSimulator("secondary") as secondary:
        print(
            "| fault | status | answered by | finished by | whole answer | time to answer (s) "
            "| primary / secondary requests |"
        )
        print("|---|---|---|---|---|---|---|")
        for name, run in rows.items():
            if args.only and not any(o in name for o in args.only):
                continue
            times = []
            for _ in range(args.runs):
                fresh(primary, secondary)
                response, seconds = run(primary, secondary)
                times.append(seconds)
            provider = response.get("X-Fallback-Provider", "-")
            whole = "-" if response.stream_text is None else response.stream_text == ANSWER
            if not name.startswith("stream "):
                whole = "-"  # not a stream row: the answer is the simulator's greeting
            print(
                f"| {name} | {response.status_code} | {provider} | "
                f"{response.finished_by or '-'} | {whole} | "
                f"{statistics.median(times):.2f} | "
                f"{primary.request_count} / {secondary.request_count} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
