"""Per-provider call counters in one-second buckets, buffered per process.

Successes and first attempts are the happy path, so they are kept in memory and
written at most every FALLBACK_COUNTER_FLUSH_S. Anything that can trip a breaker
(failures, slow calls) flushes the buffer first and is written at once, so the
window the breaker reads includes everything this process has seen.

A serving process (see `fallbackproject/wsgi.py`) also flushes on a timer
thread, so the last answers before a quiet spell reach the database (and
`/api/status`) within FALLBACK_COUNTER_FLUSH_S instead of waiting for the next
request. Every structure here is guarded by one lock; the database writes
happen outside it.
"""

import atexit
import logging
import os
import threading
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import DatabaseError, IntegrityError, connections, transaction
from django.db.models import F, Sum

from ..conf import get_setting
from ..models import CallBucket, FailureBucket
from . import metrics, usage
from .clock import get_clock

logger = logging.getLogger(__name__)

FIELDS = (
    "first_attempts",
    "retries",
    "successes",
    "failures",
    "slow_calls",
    "rate_limited",
    "not_permitted",
    "budget_refusals",
    "answered_first_try",
    "answered_after_retries",
    "answered_by_fallback",
    "interrupted",
    "latency_ms_sum",  # time to first output (selectors.call_stats names both)
    "total_ms_sum",  # total time
)
# Processes write to their own shard so concurrent flushes rarely touch one row.
SHARDS = 8

_lock = threading.Lock()
_pending: dict[tuple[int, datetime], Counter] = defaultdict(Counter)
# Failed attempts by reason: {(provider id, second): Counter(reason -> attempts)}.
_pending_failures: dict[tuple[int, datetime], Counter] = defaultdict(Counter)
_last_flush: float | None = None
_background = False  # flush on a timer thread too (serving processes)
_flusher_pid: int | None = None  # the process whose timer thread runs (forks start their own)
_stop = threading.Event()


@dataclass(frozen=True)
class WindowCounts:
    calls: int
    failures: int
    slow_calls: int
    first_attempts: int
    retries: int


def bucket_of(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)


def count(provider_id: int, *, flush: bool = False, **increments: float) -> None:
    """Add to this second's bucket; write through when `flush` or when a flush is due."""
    global _last_flush
    if _background and _flusher_pid != os.getpid():
        _start_flusher()
    clock = get_clock()
    key = (provider_id, bucket_of(clock.now()))
    with _lock:
        _pending[key].update(increments)
        if _last_flush is None:
            _last_flush = clock.monotonic()
        due = clock.monotonic() - _last_flush >= get_setting("COUNTER_FLUSH_S")
    if flush or due:
        flush_pending()


def count_failure(provider_id: int, reason: str) -> None:
    """One failed attempt of a provider, by reason (its category, the `outcome`
    label of /metrics' `fallback_attempt_seconds`); written at once, as failures are."""
    key = (provider_id, bucket_of(get_clock().now()))
    with _lock:
        _pending_failures[key][reason] += 1
    flush_pending()


def flush_pending() -> None:
    """Write every buffered increment. A database error keeps them for the next flush."""
    global _last_flush
    with _lock:
        batch = dict(_pending)
        _pending.clear()
        failures = dict(_pending_failures)
        _pending_failures.clear()
        _last_flush = get_clock().monotonic()
    kept: dict[tuple[int, datetime], Counter] = {}
    for (provider_id, bucket_start), by_reason in failures.items():
        try:
            _add_failures(provider_id, bucket_start, by_reason)
        except DatabaseError:
            logger.warning("failure flush failed for provider %s; kept for later", provider_id)
            metrics.store_error("counter_flush")
            kept[(provider_id, bucket_start)] = by_reason
    if kept:
        with _lock:
            for key, by_reason in kept.items():
                _pending_failures[key].update(by_reason)
    failed: dict[tuple[int, datetime], Counter] = {}
    for (provider_id, bucket_start), increments in batch.items():
        try:
            _add_to_bucket(provider_id, bucket_start, increments)
        except DatabaseError:
            logger.warning("counter flush failed for provider %s; kept for later", provider_id)
            metrics.store_error("counter_flush")
            failed[(provider_id, bucket_start)] = increments
    if failed:
        with _lock:
            for key, increments in failed.items():
                _pending[key].update(increments)
    usage.flush_pending()  # the usage ledger's buffer rides on the same schedule


def flush_in_background() -> None:
    """From now on this process (and any process forked from it) also flushes
    every FALLBACK_COUNTER_FLUSH_S from a daemon thread, started with the first count."""
    global _background
    _background = True
    _stop.clear()


def flushing_in_background() -> bool:
    """True in a serving process: a timer thread writes the buffers (traces too)."""
    return _background


def stop_background_flush(timeout: float = 5.0) -> None:
    """Stop the timer thread after one last flush (tests; process exit flushes anyway)."""
    global _background, _flusher_pid
    _background = False
    _stop.set()
    thread = next((t for t in threading.enumerate() if t.name == FLUSHER_THREAD), None)
    if thread is not None:
        thread.join(timeout)
    _flusher_pid = None


FLUSHER_THREAD = "fallback-counter-flush"


def _start_flusher() -> None:
    global _flusher_pid
    with _lock:
        if _flusher_pid == os.getpid():
            return
        _flusher_pid = os.getpid()
    threading.Thread(target=_flush_periodically, name=FLUSHER_THREAD, daemon=True).start()


def _flush_periodically() -> None:
    # Real time, not the engine clock: a fake clock must not spin or stall this thread.
    while not _stop.wait(get_setting("COUNTER_FLUSH_S")):
        _flush_if_pending()
        _flush_traces()
    _flush_if_pending()
    _flush_traces()


def _flush_if_pending() -> None:
    with _lock:
        idle = not _pending and not _pending_failures
    if idle and not usage.has_pending():
        return
    try:
        flush_pending()
    except Exception:  # never let the timer thread die; the next tick tries again
        logger.exception("background counter flush failed")
    finally:
        # This thread's connection goes back (to the pool, or closed) between ticks.
        connections.close_all()


def _flush_traces() -> None:
    """The sampled request traces ride on this timer too (engine/tracing.py)."""
    from .tracing import flush_traces  # tracing imports nothing of this module; no cycle

    try:
        flush_traces()
    except Exception:  # never let the timer thread die
        logger.exception("background trace flush failed")
    finally:
        connections.close_all()


def _flush_at_exit() -> None:
    """Short-lived processes (commands, scripts) would otherwise lose their
    buffered successes; gunicorn workers also flush from the server hook."""
    try:
        flush_pending()
    except Exception:  # the interpreter is going away; nothing to report to
        logger.debug("counter flush at exit failed", exc_info=True)


atexit.register(_flush_at_exit)


def discard_pending() -> None:
    """Forget buffered increments (tests, and processes that fork)."""
    global _last_flush
    with _lock:
        _pending.clear()
        _pending_failures.clear()
        _last_flush = None
    usage.discard_pending()


def _add_to_bucket(provider_id: int, bucket_start: datetime, increments: Counter) -> None:
    shard = os.getpid() % SHARDS
    values = {name: F(name) + amount for name, amount in increments.items() if amount}
    if not values:
        return
    rows = CallBucket.objects.filter(
        provider_id=provider_id, bucket_start=bucket_start, shard=shard
    )
    if rows.update(**values):
        return
    try:
        with transaction.atomic():
            CallBucket.objects.create(
                provider_id=provider_id,
                bucket_start=bucket_start,
                shard=shard,
                **{name: amount for name, amount in increments.items()},
            )
    except IntegrityError:  # another thread of this process created it first
        rows.update(**values)


def _add_failures(provider_id: int, bucket_start: datetime, by_reason: Counter) -> None:
    shard = os.getpid() % SHARDS
    for reason, amount in by_reason.items():
        rows = FailureBucket.objects.filter(
            provider_id=provider_id, bucket_start=bucket_start, reason=reason, shard=shard
        )
        if rows.update(failures=F("failures") + amount):
            continue
        try:
            with transaction.atomic():
                FailureBucket.objects.create(
                    provider_id=provider_id,
                    bucket_start=bucket_start,
                    reason=reason,
                    shard=shard,
                    failures=amount,
                )
        except IntegrityError:  # another thread of this process created it first
            rows.update(failures=F("failures") + amount)


def window_counts(provider_id: int, *, since: datetime | None = None) -> WindowCounts:
    """Sums over the breaker window (buckets that started within the last window)."""
    now = get_clock().now()
    start = now - timedelta(seconds=get_setting("BREAKER_WINDOW_S"))
    rows = CallBucket.objects.filter(provider_id=provider_id, bucket_start__gt=start)
    if since is not None:
        rows = rows.filter(bucket_start__gte=bucket_of(since))
    sums = rows.aggregate(
        **{
            name: Sum(name)
            for name in ("successes", "failures", "slow_calls", "first_attempts", "retries")
        }
    )
    sums = {name: value or 0 for name, value in sums.items()}
    return WindowCounts(
        calls=sums["successes"] + sums["failures"] + sums["slow_calls"],
        failures=sums["failures"],
        slow_calls=sums["slow_calls"],
        first_attempts=sums["first_attempts"],
        retries=sums["retries"],
    )
