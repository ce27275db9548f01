"""In-process `litellm.Router` calls, run by bench/peer.py inside the peer venv.

Reads one JSON command per stdin line, answers one JSON line on stdout:

    {"op": "setup", "name": "a", "model_list": [...], "router_settings": {...}, "model": "primary"}
        -> {"ok": true, "version": "1.110.2"}     (a new Router under that name)
    {"op": "call", "name": "a", "n": 10} -> {"calls": [[latency_ms, error_class_or_null], ...]}
    {"op": "quit"}

Only litellm and the standard library: it never imports the project.
"""

import json
import os
import sys
import time

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # never download the cost map
os.environ.setdefault("LITELLM_TELEMETRY", "False")

MESSAGES = [{"role": "user", "content": "Say hello."}]


def main() -> None:
    import logging

    import litellm

    litellm.telemetry = False
    litellm.suppress_debug_info = True
    logging.disable(logging.CRITICAL)
    routers: dict = {}  # name -> (Router, model)
    out = sys.stdout
    for line in sys.stdin:
        command = json.loads(line)
        op = command["op"]
        if op == "quit":
            return
        if op == "setup":
            router = litellm.Router(
                model_list=command["model_list"], **command.get("router_settings", {})
            )
            routers[command["name"]] = (router, command.get("model", "primary"))
            reply = {"ok": True, "version": _version()}
        elif op == "call":
            router, model = routers[command["name"]]
            calls = []
            for _ in range(command["n"]):
                started = time.perf_counter()
                error = None
                try:
                    router.completion(model=model, messages=MESSAGES)
                except Exception as exc:  # a failed request is a data point, not a crash
                    error = type(exc).__name__
                calls.append([(time.perf_counter() - started) * 1000, error])
            reply = {"calls": calls}
        else:
            reply = {"error": f"unknown op {op!r}"}
        out.write(json.dumps(reply) + "\n")
        out.flush()


def _version() -> str:
    from importlib.metadata import version

    return version("litellm")


if __name__ == "__main__":
    main()
