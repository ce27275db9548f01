"""Every process-wide structure of the engine, hammered from many threads.

A gthread worker runs up to WEB_THREADS requests at once in one process; these
are the structures they share (docs/operations.md, "Serving", lists the audit).
The routing snapshot has its own test in test_routing.py.
"""

import gc
import threading
import time
import weakref
from collections.abc import Callable

import pytest
from django.db import connection
from django.db.models import Sum

from fallbackproject.db.postgresql.base import _Outage
from providers_app.adapters.base import ChatRequest, Message
from providers_app.api.auth import RecentlyValidatedKeys
from providers_app.engine import counters, metrics
from providers_app.engine.adapter_pool import adapter_for_entry
from providers_app.engine.events import all_failed_events
from providers_app.models import CallBucket, FailoverEvent
from providers_app.selectors import route_entry_for
from tests.factories import provider_create

THREADS = 32
REQUEST = ChatRequest(messages=(Message("user", "Say hello."),))


def _hammer(work: Callable[[int], None], threads: int = THREADS) -> list[BaseException]:
    """Run work(i) on `threads` threads released together; the exceptions they raised."""
    start = threading.Barrier(threads)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        start.wait()
        try:
            work(i)
        except BaseException as error:  # reported to the test, not lost in a thread
            errors.append(error)
        finally:
            connection.close()

    pool = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=120)
    return errors


@pytest.mark.django_db(transaction=True)
def test_counters_from_many_threads_add_up_exactly_with_flushes_racing():
    """32 threads x 200 increments, every 10th forcing a flush: nothing is lost or
    counted twice, whether a flush wins, loses a race or fails and is kept."""
    provider = provider_create(name="p")

    def work(i: int) -> None:
        for n in range(200):
            counters.count(provider.pk, successes=1, flush=n % 10 == 0)

    assert _hammer(work) == []
    counters.flush_pending()
    stored = CallBucket.objects.aggregate(n=Sum("successes"))["n"]
    assert stored == THREADS * 200


@pytest.mark.django_db(transaction=True)
def test_adapters_from_many_threads_while_the_config_flips_never_fail_a_call(primary):
    """Half the threads change the provider's headers (a new adapter each time)
    while all of them call the upstream with whatever adapter they got: no call
    meets a closed session."""
    provider = provider_create(name="p", base_url=primary.base_url)
    entry = route_entry_for(provider.pk)
    primary.set_fault("ok", delay_s=0.01)

    def work(i: int) -> None:
        for n in range(10):
            changed = entry.__class__(**{**entry.__dict__, "extra": {"headers": {"X-N": str(n)}}})
            adapter = adapter_for_entry(changed if i % 2 else entry)
            assert adapter.complete(REQUEST, timeout=5).text

    assert _hammer(work) == []


@pytest.mark.django_db
def test_a_replaced_adapter_is_closed_only_after_its_last_call_ends(primary):
    """A call in flight on the old adapter finishes normally after the provider's
    config changed; the old session closes once that thread lets go of it."""
    provider = provider_create(name="p", base_url=primary.base_url)
    entry = route_entry_for(provider.pk)
    old = adapter_for_entry(entry)
    old_session = old.session
    primary.set_fault("ok", delay_s=0.3)
    result: list[str] = []
    caller = threading.Thread(
        target=lambda a=old: result.append(a.complete(REQUEST, timeout=5).text)
    )
    caller.start()
    time.sleep(0.1)  # the call is in flight

    changed = entry.__class__(**{**entry.__dict__, "extra": {"headers": {"X-New": "1"}}})
    new = adapter_for_entry(changed)
    assert new is not old
    assert old_session.adapters, "the old session is still open while its call runs"

    caller.join(timeout=10)
    assert len(result) == 1
    assert result[0]
    closed = weakref.ref(old)
    old_pools = old_session.get_adapter("http://x").poolmanager.pools
    del old, caller
    gc.collect()
    assert closed() is None
    assert len(old_pools) == 0, "the replaced session was closed once unused"


@pytest.mark.django_db(transaction=True)
def test_all_failed_events_from_many_threads_account_for_every_failure(settings):
    """32 threads x 20 all-failed outcomes within one coalescing window: the rows
    written plus the count still pending equal 640, with one row per window."""
    settings.FALLBACK_ALL_FAILED_COALESCE_S = 60.0
    all_failed_events.reset()

    def work(i: int) -> None:
        for _ in range(20):
            all_failed_events.record(reason="all_failed", detail="", request_id=f"r{i}")

    assert _hammer(work) == []
    written = FailoverEvent.objects.filter(kind="all_failed")
    assert written.count() == 1
    assert written.aggregate(n=Sum("count"))["n"] + all_failed_events._pending == THREADS * 20


def test_metrics_from_many_threads_add_up_exactly():
    counter = metrics.SKIPS.labels(provider="hammer", reason="open")
    before = counter._value.get()

    def work(i: int) -> None:
        for _ in range(1000):
            counter.inc()

    assert _hammer(work) == []
    assert counter._value.get() - before == THREADS * 1000


def test_recent_client_keys_from_many_threads_stay_consistent_and_bounded(monkeypatch):
    keys = RecentlyValidatedKeys()
    monkeypatch.setattr(RecentlyValidatedKeys, "MAX_ENTRIES", 100)

    def work(i: int) -> None:
        for n in range(300):
            digest = f"{i}-{n}"
            keys.remember(digest, object())
            keys.recent(digest)
            if n % 3 == 0:
                keys.forget(digest)

    assert _hammer(work) == []
    assert len(keys._keys) <= 100


def test_while_the_database_is_down_one_thread_per_retry_period_tries_to_connect(settings):
    """After a failed connect, 32 threads asking at once: none tries until the
    retry period passes, then exactly one does."""
    settings.DATABASE_RETRY_AFTER_FAILURE_S = 0.2
    outage = _Outage()
    outage.failed()
    admitted: list[int] = []
    assert _hammer(lambda i: admitted.append(i) if outage.admit() else None) == []
    assert admitted == []
    time.sleep(0.25)
    assert _hammer(lambda i: admitted.append(i) if outage.admit() else None) == []
    assert len(admitted) == 1
    outage.recovered()
    assert outage.admit()
