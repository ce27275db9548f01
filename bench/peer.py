"""LiteLLM, the peer every benchmark compares against, in its own venv.

`make bench-peer` builds bench/.peer-venv from bench/requirements-peer.txt
(`BENCH_PEER_PYTHON=/path/to/python` points at another one). Nothing here imports
litellm into the project's interpreter:

- `RouterWorker` runs `litellm.Router.completion` in-process inside the peer venv
  (bench/peer_worker.py over a pipe; the latency is timed inside that process);
  it holds several named Routers, each with its own state.
- `LiteLLMProxy` starts LiteLLM's proxy on 127.0.0.1 with a generated config
  (master key, deployments in front of the given upstreams, router settings) and
  stops it. bench/concurrency.py can reuse it:

      with LiteLLMProxy([primary_url, secondary_url]) as proxy:
          post(f"{proxy.base_url}/v1/chat/completions", model=proxy.model,
               headers={"Authorization": f"Bearer {proxy.master_key}"})

Without a peer venv, `peer_python()` is None and every table prints our side
and `SKIPPED`.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, free_port, stop_process, wait_until

PEER_VENV = ROOT / "bench" / ".peer-venv"
SKIPPED = (
    "LiteLLM peer skipped: no peer venv. Install it with `make bench-peer` "
    "(bench/.peer-venv from bench/requirements-peer.txt) or set BENCH_PEER_PYTHON."
)
# The model name clients send; it is LiteLLM's first model group, and `fallbacks`
# sends its failures to the second, in the order our providers have.
MODEL = "primary"

# LiteLLM as installed: only the fallback order, which any failover setup needs.
ROUTER_DEFAULTS: dict = {"fallbacks": [{"primary": ["secondary"]}]}
# What an operator who read LiteLLM's reliability docs would set: cool a deployment
# down after one failure, for 30 s (our breaker's base open time), and no retry on
# the same deployment (the fallback is the retry), with the OpenAI client's own
# retries off too.
ROUTER_TUNED: dict = {
    **ROUTER_DEFAULTS,
    "allowed_fails": 1,
    "cooldown_time": 30,
    "num_retries": 0,
}
TUNED_DEPLOYMENT: dict = {"max_retries": 0}


def peer_python() -> str | None:
    """The peer venv's interpreter when it has litellm installed, else None."""
    candidate = os.environ.get("BENCH_PEER_PYTHON") or str(PEER_VENV / "bin" / "python")
    if os.environ.get("BENCH_PEER", "").lower() in {"0", "off", "no", "false"}:
        return None
    if not Path(candidate).exists():
        return None
    return candidate if peer_version(candidate) else None


def peer_version(python: str) -> str | None:
    probe = subprocess.run(  # noqa: S603 (the peer venv's interpreter, a fixed snippet)
        [python, "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
        capture_output=True,
        text=True,
        check=False,
        env=peer_env(),
    )
    return probe.stdout.strip() if probe.returncode == 0 else None


def peer_env() -> dict[str, str]:
    """A clean environment: the project's DATABASE_URL or REDIS_URL must not reach
    LiteLLM, whose proxy would try to use them for its own tables."""
    keep = {"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ"}
    env = {name: value for name, value in os.environ.items() if name in keep}
    env.update(
        {
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # never download the cost map
            "LITELLM_TELEMETRY": "False",
            "LITELLM_LOG": "ERROR",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def model_list(upstreams: Sequence[str], *, timeout_s: float, tuned: bool = False) -> list[dict]:
    """One OpenAI-format deployment per upstream: `primary`, `secondary`, `tertiary`..."""
    names = ["primary", "secondary", "tertiary", "quaternary"]
    deployments = []
    for name, url in zip(names, upstreams, strict=False):
        params = {
            "model": "openai/sim",
            "api_base": url,
            "api_key": "sk-bench-not-a-secret",
            "timeout": timeout_s,
            "stream_timeout": timeout_s,
        }
        if tuned:
            params.update(TUNED_DEPLOYMENT)
        deployments.append({"model_name": name, "litellm_params": params})
    return deployments


def router_settings(upstreams: Sequence[str], *, tuned: bool) -> dict:
    names = ["primary", "secondary", "tertiary", "quaternary"][: len(upstreams)]
    settings = dict(ROUTER_TUNED if tuned else ROUTER_DEFAULTS)
    settings["fallbacks"] = [{names[0]: names[1:]}] if len(names) > 1 else []
    return settings


class RouterWorker:
    """`litellm.Router` in a peer-venv subprocess; `call(n)` times n completions there."""

    def __init__(self, python: str):
        self.process = subprocess.Popen(  # noqa: S603 (our worker script)
            [python, str(ROOT / "bench" / "peer_worker.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=peer_env(),
            start_new_session=True,
        )
        self.version = ""

    def _ask(self, command: dict) -> dict:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        try:
            self.process.stdin.write(json.dumps(command) + "\n")
            self.process.stdin.flush()
            line = self.process.stdout.readline()
        except OSError:  # a broken pipe: the worker is gone
            line = ""
        if not line:
            raise RuntimeError(
                f"the LiteLLM router worker exited (code {self.process.poll()}); "
                "is the peer venv complete? `make bench-peer`"
            )
        return json.loads(line)

    def setup(
        self, upstreams: Sequence[str], *, timeout_s: float, tuned: bool = False, name: str = "a"
    ) -> None:
        """A fresh Router `name` (no cooldowns carried over) in front of `upstreams`."""
        reply = self._ask(
            {
                "op": "setup",
                "name": name,
                "model_list": model_list(upstreams, timeout_s=timeout_s, tuned=tuned),
                "router_settings": router_settings(upstreams, tuned=tuned),
                "model": MODEL,
            }
        )
        self.version = reply.get("version", "")

    def call(self, n: int = 1, *, name: str = "a") -> list[tuple[float, str | None]]:
        """Latency (ms) and error class (or None) of n completions through Router `name`."""
        return [tuple(call) for call in self._ask({"op": "call", "n": n, "name": name})["calls"]]

    def close(self) -> None:
        with contextlib.suppress(OSError):  # already gone: nothing to say goodbye to
            assert self.process.stdin is not None
            self.process.stdin.write(json.dumps({"op": "quit"}) + "\n")
            self.process.stdin.close()
        stop_process(self.process, grace_s=5)

    def __enter__(self) -> RouterWorker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class LiteLLMProxy:
    """LiteLLM's proxy (`litellm --config`) on a free loopback port, with a master key.

    `workers` is its `--num_workers` (uvicorn processes; 1 by default, as for one
    gunicorn worker on our side).

    `start()` returns once a chat completion through it answered, so
    `startup_s` is start-up to first answer. `stop()` ends the process group it
    started, nothing else.
    """

    def __init__(
        self,
        upstreams: Sequence[str],
        *,
        tuned: bool = False,
        timeout_s: float = 10.0,
        python: str | None = None,
        port: int | None = None,
        workers: int = 1,
    ):
        self.python = python or peer_python()
        if self.python is None:
            raise RuntimeError(SKIPPED)
        self.upstreams = list(upstreams)
        self.tuned = tuned
        self.timeout_s = timeout_s
        self.workers = workers
        self.port = port or free_port()
        self.master_key = "sk-bench-" + secrets.token_hex(8)
        self.model = MODEL
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.startup_s: float | None = None
        self._folder = Path(tempfile.mkdtemp(prefix="bench-litellm-"))

    def config(self) -> dict:
        return {
            "model_list": model_list(self.upstreams, timeout_s=self.timeout_s, tuned=self.tuned),
            "router_settings": router_settings(self.upstreams, tuned=self.tuned),
            "litellm_settings": {"telemetry": False},
            "general_settings": {"master_key": self.master_key},
        }

    def start(self, *, timeout_s: float = 180) -> LiteLLMProxy:
        config = self._folder / "config.yaml"
        config.write_text(json.dumps(self.config(), indent=2))  # JSON is YAML
        litellm = str(Path(self.python).parent / "litellm")
        started = time.monotonic()
        self.process = subprocess.Popen(  # noqa: S603 (the peer venv's own CLI)
            [
                *(litellm, "--config", str(config), "--host", "127.0.0.1"),
                *("--port", str(self.port), "--num_workers", str(self.workers)),
            ],
            cwd=self._folder,
            env=peer_env(),
            stdout=(self._folder / "proxy.log").open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_until(self._answers, timeout_s=timeout_s, process=self.process)
        except BaseException:
            log = (self._folder / "proxy.log").read_text()[-3000:]
            self.stop()
            raise RuntimeError(f"LiteLLM proxy did not answer:\n{log}") from None
        self.startup_s = time.monotonic() - started
        return self

    def _answers(self) -> bool:
        response = requests.post(
            f"{self.base_url}/v1/chat/completions",
            json={"model": self.model, "messages": [{"role": "user", "content": "Say hello."}]},
            headers={"Authorization": f"Bearer {self.master_key}"},
            timeout=30,
        )
        return response.status_code == 200

    @property
    def pids(self) -> list[int]:
        """The proxy's process and its children (uvicorn may fork workers)."""
        from bench.common import children_of

        if self.process is None:
            return []
        return [self.process.pid, *children_of(self.process.pid)]

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None

    def __enter__(self) -> LiteLLMProxy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
