"""Per-key limits hold across processes: several spawned processes, each with
several threads, take slots of one key's limits as fast as they can, on
PostgreSQL (the database store) or Redis. Each success is counted in shared
memory before the slot is given back, so the in-flight count seen there can only
be lower than the store's: it must never exceed the limit.

Every process runs on one frozen clock moment, so the requests-per-minute
window cannot roll over during the test (the test does not depend on the hour).
"""

from __future__ import annotations

import multiprocessing
import os
import time
import traceback

import pytest

from .procs import child_env

CONTEXT = multiprocessing.get_context("spawn")
PROCESSES = 4
THREADS = 4
ATTEMPTS = 25  # per thread
REDIS_URL = "redis://127.0.0.1:6379/3"


def _child(env, kind, maximum, start, in_flight, peak, granted, refused, errors):
    """One process: THREADS threads x ATTEMPTS acquires, each slot held 5 ms."""
    import threading
    from datetime import UTC, datetime

    try:
        os.environ.update(env)
        import django

        django.setup()
        from django.db import connection

        from providers_app.engine.clock import FakeClock, set_clock
        from providers_app.limits import Limit, LimitExceeded, LimitKind, acquire

        set_clock(FakeClock(datetime(2026, 3, 2, 12, 0, 5, tzinfo=UTC)))
        limits = [Limit(LimitKind(kind), "key:cross-process", maximum)]
        if kind == LimitKind.CONCURRENT_REQUESTS:  # and a rate that never binds
            limits.append(Limit(LimitKind.REQUESTS_PER_MINUTE, "key:cross-process", 10**6))
    except BaseException:
        errors.put(traceback.format_exc())
        return

    def body():
        try:
            start.wait(timeout=60)
            for _ in range(ATTEMPTS):
                try:
                    lease = acquire(limits)
                except LimitExceeded:
                    with refused.get_lock():
                        refused.value += 1
                    time.sleep(0.001)
                    continue
                with in_flight.get_lock():
                    in_flight.value += 1
                    peak.value = max(peak.value, in_flight.value)
                    granted.value += 1
                time.sleep(0.005)
                with in_flight.get_lock():
                    in_flight.value -= 1
                lease.release()
        except BaseException:
            errors.put(traceback.format_exc())
        finally:
            connection.close()

    threads = [threading.Thread(target=body) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


@pytest.fixture(params=["postgresql", "redis"])
def store_env(request, transactional_db):
    from django.db import connection

    if request.param == "postgresql":
        if connection.vendor != "postgresql":
            pytest.skip("the database store across processes needs PostgreSQL")
        yield child_env(connection.settings_dict, LIMITS_REDIS_URL="")
        return
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=0.5)
    try:
        client.flushdb()
    except redis.RedisError:
        pytest.skip("no Redis at " + REDIS_URL)
    yield child_env(connection.settings_dict, LIMITS_REDIS_URL=REDIS_URL)
    client.flushdb()


def _race(env, kind, maximum):
    start = CONTEXT.Event()
    in_flight, peak = CONTEXT.Value("i", 0), CONTEXT.Value("i", 0)
    granted, refused = CONTEXT.Value("i", 0), CONTEXT.Value("i", 0)
    errors = CONTEXT.Queue()
    shared = (start, in_flight, peak, granted, refused, errors)
    processes = [
        CONTEXT.Process(target=_child, args=(env, kind, maximum, *shared)) for _ in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    time.sleep(0.5)
    start.set()
    for process in processes:
        process.join(timeout=120)
    problems = []
    while not errors.empty():
        problems.append(errors.get())
    assert not problems, "\n".join(problems)
    assert all(process.exitcode == 0 for process in processes)
    return peak.value, granted.value, refused.value


def test_concurrent_slots_never_exceed_the_limit_across_processes(store_env):
    peak, granted, refused = _race(store_env, "concurrent_requests", 3)
    assert peak <= 3
    assert refused > 0  # 16 threads wanted more than 3 slots
    assert granted + refused == PROCESSES * THREADS * ATTEMPTS


def test_requests_per_minute_never_exceed_the_limit_across_processes(store_env):
    _, granted, refused = _race(store_env, "requests_per_minute", 57)
    assert granted == 57  # exactly the minute's allowance, then refusals
    assert refused == PROCESSES * THREADS * ATTEMPTS - 57
