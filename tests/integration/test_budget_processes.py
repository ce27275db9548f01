"""A budget holds across processes (PostgreSQL): 4 spawned processes x 8 threads
race one client key's tokens-per-minute budget.

The bound (engine/budgets.py, docs/usage.md "Budgets"): a window's count passes
the limit only by tokens billed beyond their reservation, summed over the
requests in flight, at most 32 here. With `max_tokens` set the reservation
covers the answer and the limit holds exactly; with none and a reservation
smaller than the answer (FALLBACK_BUDGET_OUTPUT_RESERVE=1 in these workers) the
overshoot stays within 32 x (billed - reserved).

Real wall-clock time: the limiter keeps one window per key (LimitCounter), so a
burst starts early in a minute, well clear of its end.
"""

import time

import pytest

from providers_app.engine.budgets import reservation_tokens
from providers_app.engine.fallback import build_request
from providers_app.models import LimitCounter
from providers_app.services.client_keys import client_key_create
from providers_app.simulator import payloads

from .procs import HELLO, Burst, WorkerPool

pytestmark = [
    pytest.mark.integration,
    pytest.mark.postgres,
    pytest.mark.usefixtures("postgresql_only", "fresh_process_state"),
]

PROCESSES, THREADS, REQUESTS_PER_PROCESS = 4, 8, 24
LIMIT = 100  # tokens per minute
OUTPUT_RESERVE = 1  # the workers' FALLBACK_BUDGET_OUTPUT_RESERVE


@pytest.fixture(scope="module")
def pool(postgresql_only, worker_env):
    with WorkerPool(PROCESSES, worker_env(BUDGET_OUTPUT_RESERVE=OUTPUT_RESERVE), (PROCESSES,)) as p:
        yield p


def _race(pool, providers, **burst) -> tuple[list, dict]:
    providers()
    client_key_create(name="bulk")
    from providers_app.models import ClientKey

    ClientKey.objects.filter(name="bulk").update(tokens_per_minute=LIMIT)
    if time.time() % 60 > 40:  # the burst takes seconds: never across a minute's end
        time.sleep(60.5 - time.time() % 60)
    outcomes = pool.run(
        Burst(1, requests=REQUESTS_PER_PROCESS, threads=THREADS, barrier=PROCESSES,
              key_name="bulk", **burst),
        workers=PROCESSES,
    )  # fmt: skip
    key = ClientKey.objects.get(name="bulk")
    windows = dict(
        LimitCounter.objects.filter(scope=f"key:{key.pk}", kind="tokens_per_minute").values_list(
            "window_start", "used"
        )
    )
    return outcomes, windows


def _billed_per_call(primary) -> int:
    """What the simulated vendor bills for one HELLO (its own word counts)."""
    return payloads.prompt_words(HELLO) + payloads.count_words(f"Hello from {primary.name}.")


def test_with_max_tokens_the_limit_holds_exactly(pool, providers, primary):
    outcomes, windows = _race(pool, providers, max_tokens=20)
    answered = [o for o in outcomes if o.provider]
    refused = [o for o in outcomes if "BudgetExceeded" in o.error]
    assert len(answered) + len(refused) == PROCESSES * REQUESTS_PER_PROCESS
    assert refused, "the burst must be larger than the budget"
    assert answered
    print(f"\nmax_tokens=20: {len(answered)} answered, {len(refused)} refused, "
          f"windows {sorted(windows.values())} of limit {LIMIT}")  # fmt: skip
    assert all(used <= LIMIT for used in windows.values())
    assert sum(windows.values()) == len(answered) * _billed_per_call(primary)


def test_without_max_tokens_the_overshoot_stays_within_the_bound(pool, providers, primary):
    outcomes, windows = _race(pool, providers)
    answered = [o for o in outcomes if o.provider]
    billed = _billed_per_call(primary)
    prompt_estimate = reservation_tokens(build_request(HELLO, max_tokens=1)) - 1
    per_request_excess = max(0, billed - (prompt_estimate + OUTPUT_RESERVE))
    bound = PROCESSES * THREADS * per_request_excess
    print(f"\nno max_tokens: {len(answered)} answered, windows {sorted(windows.values())}, "
          f"limit {LIMIT}, bound {LIMIT + bound} ({billed} billed vs "
          f"{prompt_estimate + OUTPUT_RESERVE} reserved per call)")  # fmt: skip
    assert per_request_excess > 0  # this test is about the reservation falling short
    assert all(used <= LIMIT + bound for used in windows.values())
