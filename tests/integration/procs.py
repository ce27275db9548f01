"""Worker processes for the cross-process breaker tests.

Each worker is a *spawned* Python process (never forked: it must not inherit
the test process's caches, counters or connections) that runs `django.setup()`
against the test database and then waits for commands. One command is a
`Burst`: make N `fallback.complete()` calls on a few threads, optionally after
meeting the other workers at a shared `multiprocessing.Barrier`, and send back
one `Outcome` per call.

The pool outlives single tests (module scope), so the workers hold nothing
between rounds but their Django setup: every thread opens its own database
connection for the round and closes it when it ends, and per-process buffers
(counters, the routing snapshot) are dropped at the start of each round.

Nothing Django is imported at module level: the parent imports this module
before and independently of the children's settings.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import queue
import threading
import time
import traceback
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import quote

CONTEXT = multiprocessing.get_context("spawn")
HELLO = [{"role": "user", "content": "Say hello."}]

STARTUP_TIMEOUT_S = 60.0  # spawn + django.setup() of every worker on a busy 2-core box
BARRIER_TIMEOUT_S = 30.0
ROUND_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Burst:
    """One round's work for one worker process."""

    round: int
    requests: int = 1  # calls this process makes (ignored when `until` is set)
    threads: int = 1
    barrier: int | None = None  # meet the other workers at the barrier of this many parties
    until: float | None = None  # instead of `requests`: keep calling until this time.time()
    route: str | None = None  # the route each call asks for (None: the default)
    key_name: str = ""  # the client key each call is made for (budgets, usage)
    max_tokens: int | None = None


class Outcome(NamedTuple):
    """What one `complete()` call saw."""

    provider: str | None  # who answered; None when the call raised
    skipped: tuple[tuple[str, str], ...]  # (provider, reason) the breaker skipped
    failed: tuple[tuple[str, str], ...]  # (provider, error category) tried and failed
    error: str  # the exception, when the call raised
    started: float  # time.time()
    finished: float


class RoundFailed(AssertionError):
    """A worker crashed, timed out or raised inside a round."""


def database_url(settings_dict: Mapping[str, Any]) -> str:
    """A DATABASE_URL for django-environ naming the same (test) database."""
    user = quote(settings_dict.get("USER") or "", safe="")
    password = quote(settings_dict.get("PASSWORD") or "", safe="")
    credentials = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or 5432
    return f"postgres://{credentials}{host}:{port}/{quote(settings_dict['NAME'], safe='')}"


def child_env(settings_dict: Mapping[str, Any], **fallback_settings: Any) -> dict[str, str]:
    """The environment a worker sets before `django.setup()`.

    `fallback_settings` become FALLBACK_<NAME> variables, which the settings
    module reads at load (e.g. BREAKER_LEASE_EXTRA_S=1.0).
    """
    env = {
        "DJANGO_SETTINGS_MODULE": "fallbackproject.settings.test",
        "DATABASE_URL": database_url(settings_dict),
        "DJANGO_LOG_LEVEL": "WARNING",
    }
    env.update({f"FALLBACK_{name}": str(value) for name, value in fallback_settings.items()})
    return env


# ---------------------------------------------------------------------------
# Inside a worker process
# ---------------------------------------------------------------------------


def worker_main(index: int, env: dict[str, str], barriers: dict, commands, results) -> None:
    """The worker loop: set up Django on the test database, then run Bursts until None."""
    try:
        os.environ.update(env)
        import django

        django.setup()
        from django.db import close_old_connections, connections

        import providers_app.engine.fallback  # noqa: F401  (not on the first round's clock)
    except BaseException:
        results.put((index, 0, [], traceback.format_exc()))
        raise
    results.put((index, 0, [], ""))  # ready
    while (command := commands.get()) is not None:
        seq, burst = command
        close_old_connections()
        _forget_process_state()
        try:
            outcomes = _run_burst(burst, barriers)
        except Exception:
            results.put((index, seq, [], traceback.format_exc()))
        else:
            results.put((index, seq, outcomes, ""))
    connections.close_all()
    results.close()
    results.join_thread()  # everything sent; skip the slow interpreter teardown
    os._exit(0)


def _forget_process_state() -> None:
    """Start each round like a fresh web worker: nothing buffered or cached."""
    from providers_app.testing import process_state_reset

    process_state_reset()


def _run_burst(burst: Burst, barriers: dict) -> list[Outcome]:
    """Connect every thread first, meet the other processes, then fire."""
    from django.db import connection

    work: queue.SimpleQueue = queue.SimpleQueue()
    for _ in range(0 if burst.until else burst.requests):
        work.put(None)
    connected = threading.Barrier(burst.threads + 1)
    go = threading.Event()
    aborted = threading.Event()
    outcomes: list[Outcome] = []
    errors: list[str] = []

    def has_work() -> bool:
        if aborted.is_set():
            return False
        if burst.until is not None:
            return time.time() < burst.until
        try:
            work.get_nowait()
        except queue.Empty:
            return False
        return True

    def thread_body() -> None:
        try:
            connection.ensure_connection()  # so the barrier releases calls, not connects
            connected.wait(timeout=BARRIER_TIMEOUT_S)
            go.wait()
            while has_work():
                outcomes.append(_one_call(burst.route, burst.key_name, burst.max_tokens))
        except Exception:
            connected.abort()
            errors.append(traceback.format_exc())
        finally:
            connection.close()

    threads = [threading.Thread(target=thread_body, daemon=True) for _ in range(burst.threads)]
    for thread in threads:
        thread.start()
    try:
        connected.wait(timeout=BARRIER_TIMEOUT_S)
        if burst.barrier is not None:
            barriers[burst.barrier].wait(timeout=BARRIER_TIMEOUT_S)
    except threading.BrokenBarrierError:
        aborted.set()
        errors.append(traceback.format_exc())
    go.set()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError("\n".join(errors))
    return outcomes


def _one_call(
    route: str | None = None, key_name: str = "", max_tokens: int | None = None
) -> Outcome:
    from providers_app.engine import fallback

    started = time.time()
    try:
        result = fallback.complete(HELLO, model=route, key_name=key_name, max_tokens=max_tokens)
    except Exception as error:
        return Outcome(None, (), (), f"{type(error).__name__}: {error}", started, time.time())
    skipped = tuple((reason.provider, reason.reason) for reason in result.skipped)
    failed = tuple((reason.provider, reason.reason) for reason in result.failures)
    return Outcome(result.provider, skipped, failed, "", started, time.time())


# ---------------------------------------------------------------------------
# In the test process
# ---------------------------------------------------------------------------


class WorkerPool:
    """`size` long-lived spawned workers, and one reusable Barrier per party count.

    A `multiprocessing.Barrier` can only reach a spawned child as a Process
    argument, so the barriers are made up front; each is cyclic, so every round
    that uses it gets a fresh generation of it (and `collect` resets one that a
    failed round broke). One command is outstanding at a time.
    """

    def __init__(self, size: int, env: dict[str, str], barrier_sizes: Iterable[int] = ()):
        self.size = size
        self.env = env
        self._seq = itertools.count(1)  # tells this command's answers from a failed one's
        self._expect(0, Burst(0), 0)
        self.barriers = {parties: CONTEXT.Barrier(parties) for parties in barrier_sizes}
        self.results = CONTEXT.Queue()
        self.commands = [CONTEXT.Queue() for _ in range(size)]
        self.processes = [
            CONTEXT.Process(
                target=worker_main,
                args=(index, env, self.barriers, self.commands[index], self.results),
                name=f"breaker-worker-{index}",
                daemon=True,
            )
            for index in range(size)
        ]

    def __enter__(self) -> WorkerPool:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def start(self) -> WorkerPool:
        for process in self.processes:
            process.start()
        self._expect(0, Burst(0), self.size)  # every worker says "ready" as command 0
        self._wait(self.size, "startup", STARTUP_TIMEOUT_S)
        return self

    def send(self, burst: Burst, workers: int) -> None:
        """Hand `burst` to workers 0..workers-1 without waiting for them."""
        if burst.barrier is not None and burst.barrier != workers:
            raise ValueError(f"a barrier of {burst.barrier} parties needs {burst.barrier} workers")
        seq = next(self._seq)
        self._expect(seq, burst, workers)
        for index in range(workers):
            self.commands[index].put((seq, burst))

    def finished(self) -> bool:
        """Have all workers answered the last `send`? (Does not wait.)"""
        while self._take(timeout=0):
            pass
        return len(self._answers) == self._outstanding[2]

    def collect(self) -> list[Outcome]:
        """Every worker's outcomes for the last `send` in one list; RoundFailed otherwise."""
        _, burst, workers = self._outstanding
        try:
            self._wait(workers, f"round {burst.round}", ROUND_TIMEOUT_S)
        except RoundFailed:
            if burst.barrier is not None:
                self.barriers[burst.barrier].reset()  # usable by the next round
            raise
        return [outcome for index in range(workers) for outcome in self._answers[index][0]]

    def run(self, burst: Burst, workers: int) -> list[Outcome]:
        """Send `burst` and wait for it: every worker's outcomes in one list."""
        self.send(burst, workers)
        return self.collect()

    def kill(self, index: int) -> None:
        """SIGKILL one worker (it gets no chance to report or clean up)."""
        process = self.processes[index]
        process.kill()
        process.join(timeout=10)

    def close(self) -> None:
        for index, process in enumerate(self.processes):
            if process.is_alive():
                self.commands[index].put(None)
        give_up = time.monotonic() + 15
        for process in self.processes:
            process.join(timeout=max(give_up - time.monotonic(), 0.1))
            if process.is_alive():
                process.kill()
                process.join(timeout=5)

    def _expect(self, seq: int, burst: Burst, workers: int) -> None:
        self._outstanding = (seq, burst, workers)
        self._answers: dict[int, tuple[list[Outcome], str]] = {}

    def _take(self, timeout: float) -> bool:
        """File one answer to the outstanding command; answers left over from an
        earlier, failed command are dropped. False when none came in time."""
        try:
            if timeout <= 0:
                index, seq, outcomes, error = self.results.get_nowait()
            else:
                index, seq, outcomes, error = self.results.get(timeout=timeout)
        except queue.Empty:
            return False
        if seq == self._outstanding[0]:
            self._answers[index] = (outcomes, error)
        return True

    def _wait(self, workers: int, label: str, timeout: float) -> None:
        give_up = time.monotonic() + timeout
        while len(self._answers) < workers and time.monotonic() < give_up:
            self._take(timeout=max(give_up - time.monotonic(), 0.01))
        errors = [f"worker {i} failed:\n{err}" for i, (_, err) in self._answers.items() if err]
        missing = sorted(set(range(workers)) - set(self._answers))
        if missing:
            dead = [i for i in missing if not self.processes[i].is_alive()]
            errors.append(f"no answer from workers {missing} in {timeout:g} s (dead: {dead})")
        if errors:
            raise RoundFailed(f"{label}: " + "\n".join(errors))
