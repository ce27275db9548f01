"""Tokens and spend: cost per call, the usage ledger's buffer, the /metrics counters.

Every attempt a vendor billed is recorded once: the answer (``record``) and a
failed attempt that had produced output (a stream cut after output; ``failed``).
Counts are what the vendor reported; a counter it did not send is estimated
(adapters/usage.py) and the call is counted as estimated.

Cost is exact integer nano-dollars (10^-9 USD): tokens x $ per million tokens x
1000, rounded half-even once per call (so a call's cost is within half a
nano-dollar). The failover cost of an answer is its cost minus what the route's
first provider would have billed for the same tokens: positive when a pricier
fallback answered, negative when a cheaper one did.

The ledger is buffered per process like engine/counters.py (which flushes this
buffer with its own, from the same timer thread, at exit and from the server
hooks): at most one write per (day, provider, route, key) every
FALLBACK_COUNTER_FLUSH_S, never one per request. A database error keeps the
increments for the next flush; past FALLBACK_USAGE_BUFFER_MAX_ROWS buffered rows
the oldest are dropped, logged and counted in ``fallback_usage_dropped_total``.
"""

import logging
import os
import threading
from collections import Counter
from collections.abc import Callable
from datetime import date
from decimal import Decimal

from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import F

from ..adapters.usage import Usage, usage_of
from ..conf import get_setting
from ..models import UsageLedger
from ..selectors import RouteEntry
from . import metrics
from .clock import get_clock

logger = logging.getLogger(__name__)

SHARDS = 8  # as CallBucket: concurrent flushes of several processes rarely meet
NANO_PER_USD = 10**9

LedgerKey = tuple[date, str, str, str]  # day, provider, route, key name

_lock = threading.Lock()
_pending: dict[LedgerKey, Counter] = {}
_last_flush: float | None = None
_dropped = 0  # rows dropped from a full buffer since the process started


PICO_PER_USD_PER_MTOK = 10**6  # $ per million tokens -> pico-dollars (10^-12) per token
_NO_PRICE = (0, 0, 0)
_per_token_cache: dict[tuple, tuple[int, int, int]] = {}


def _per_token(entry: RouteEntry) -> tuple[int, int, int]:
    """Input, cached-input and output prices in whole pico-dollars per token.

    Exact: a price has at most 6 decimals (Provider's fields), so $/M x 10^6 is
    an integer. Converted once per price triple: integer arithmetic per call.
    """
    prices = (entry.price_input_per_mtok, entry.price_cached_input_per_mtok,
              entry.price_output_per_mtok)  # fmt: skip
    known = _per_token_cache.get(prices)
    if known is None:
        input_price, cached_price, output_price = (
            None if price is None else int(Decimal(price) * PICO_PER_USD_PER_MTOK)
            for price in prices
        )
        input_price = input_price or 0
        known = (input_price, input_price if cached_price is None else cached_price,
                 output_price or 0)  # fmt: skip
        _per_token_cache[prices] = known
    return known


def cost_nusd(usage: Usage, entry: RouteEntry) -> int:
    """What ``entry``'s prices make of ``usage``, in nano-dollars (0 when not priced)."""
    input_price, cached_price, output_price = _per_token(entry)
    if (input_price, cached_price, output_price) == _NO_PRICE:
        return 0
    cached = min(usage.cached_input_tokens, usage.input_tokens)
    pico = (
        (usage.input_tokens - cached) * input_price
        + cached * cached_price
        + usage.output_tokens * output_price
    )
    # Pico- to nano-dollars, rounded half to even (integers only: this runs per call).
    nano, rest = divmod(pico, 1000)
    if rest > 500 or (rest == 500 and nano % 2):
        nano += 1
    return nano


def measured(
    input_tokens: int | None,
    output_tokens: int | None,
    cached_input_tokens: int | None,
    *,
    prompt_text: Callable[[], str],
    output_text: str,
    failed_attempt: bool = False,
) -> Usage:
    """The vendor's counts; the prompt's text is only read when it must be estimated."""
    return usage_of(
        input_tokens,
        output_tokens,
        cached_input_tokens,
        prompt_text=prompt_text() if input_tokens is None else "",
        output_text=output_text,
        failed_attempt=failed_attempt,
    )


def record(
    usage: Usage,
    *,
    entry: RouteEntry,
    route: str,
    key_name: str,
    first: RouteEntry | None = None,
) -> int:
    """Count one billed attempt; returns its cost in nano-dollars.

    ``first`` is the route's first provider, for the failover cost of an answer
    that came from another provider.
    """
    cost = cost_nusd(usage, entry)
    extra = 0
    if first is not None and first.id != entry.id and not usage.failed_attempt:
        extra = cost - cost_nusd(usage, first)
    increments = {
        "input_tokens": usage.input_tokens,
        "cached_input_tokens": usage.cached_input_tokens,
        "output_tokens": usage.output_tokens,
        "cost_nusd": cost,
    }
    if usage.failed_attempt:
        increments.update(failed_attempts=1, failed_cost_nusd=cost)
    else:
        increments.update(calls=1, failover_extra_nusd=extra)
    if usage.estimated:
        increments["estimated_calls"] = 1
    _count_metrics(usage, entry.name, route, key_name, cost, extra)
    _buffer((get_clock().now().date(), entry.name, route, key_name), increments)
    return cost


_children: dict[tuple, object] = {}  # labelled counters, looked up once per label set


def _child(metric, *labels: str):
    key = (metric, *labels)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*labels)
    return child


def _count_metrics(
    usage: Usage, provider: str, route: str, key_name: str, cost: int, extra: int
) -> None:
    source = "estimated" if usage.estimated else "reported"
    attempt = "failed" if usage.failed_attempt else "answered"
    tokens = metrics.TOKENS
    if usage.input_tokens:
        _child(tokens, provider, route, key_name, "input", source, attempt).inc(usage.input_tokens)
    if usage.cached_input_tokens:
        _child(tokens, provider, route, key_name, "cached_input", source, attempt).inc(
            usage.cached_input_tokens
        )
    if usage.output_tokens:
        _child(tokens, provider, route, key_name, "output", source, attempt).inc(
            usage.output_tokens
        )
    if cost:
        _child(metrics.COST, provider, route, key_name, attempt).inc(cost / NANO_PER_USD)
    if extra > 0:
        _child(metrics.FAILOVER_COST, provider, route, key_name).inc(extra / NANO_PER_USD)
    elif extra < 0:
        _child(metrics.FAILOVER_SAVINGS, provider, route, key_name).inc(-extra / NANO_PER_USD)


def _buffer(key: LedgerKey, increments: dict[str, int]) -> None:
    global _last_flush
    clock = get_clock()
    with _lock:
        row = _pending.get(key)
        if row is None:
            row = _pending[key] = Counter()
            _drop_overflow()
        row.update(increments)
        if _last_flush is None:
            _last_flush = clock.monotonic()
        due = clock.monotonic() - _last_flush >= get_setting("COUNTER_FLUSH_S")
    if due:
        flush_pending()


def _drop_overflow() -> None:
    """Keep the buffer bounded through a long database outage (caller holds the lock)."""
    global _dropped
    limit = get_setting("USAGE_BUFFER_MAX_ROWS")
    while len(_pending) > limit:
        oldest = min(_pending)  # the oldest day (then names): the least likely still read
        increments = _pending.pop(oldest)
        _dropped += 1
        metrics.USAGE_DROPPED.labels(reason="buffer_full").inc()
        logger.error(
            "usage buffer full (%d rows): dropped %s/%s/%s of %s (%d calls, %d tokens)",
            limit, oldest[1], oldest[2], oldest[3], oldest[0],
            increments["calls"] + increments["failed_attempts"],
            increments["input_tokens"] + increments["output_tokens"],
        )  # fmt: skip


def has_pending() -> bool:
    with _lock:
        return bool(_pending)


def dropped_rows() -> int:
    """Rows dropped from a full buffer by this process (also in /metrics)."""
    return _dropped


def flush_pending() -> None:
    """Write the buffered rows; a database error keeps them for the next flush."""
    global _last_flush
    with _lock:
        batch = dict(_pending)
        _pending.clear()
        _last_flush = get_clock().monotonic()
    failed: dict[LedgerKey, Counter] = {}
    for key, increments in batch.items():
        try:
            _add_to_row(key, increments)
        except DatabaseError:
            metrics.store_error("usage_flush")
            failed[key] = increments
    if failed:
        logger.warning("usage ledger flush failed for %d row(s); kept for later", len(failed))
        with _lock:
            for key, increments in failed.items():
                _pending.setdefault(key, Counter()).update(increments)
            _drop_overflow()


def discard_pending() -> None:
    """Forget buffered usage (tests)."""
    global _last_flush, _dropped
    with _lock:
        _pending.clear()
        _last_flush = None
        _dropped = 0


def _add_to_row(key: LedgerKey, increments: Counter) -> None:
    day, provider, route, key_name = key
    values = {name: F(name) + amount for name, amount in increments.items() if amount}
    if not values:
        return
    rows = UsageLedger.objects.filter(
        day=day, provider=provider, route=route, key_name=key_name, shard=os.getpid() % SHARDS
    )
    if rows.update(**values):
        return
    try:
        with transaction.atomic():
            UsageLedger.objects.create(
                day=day,
                provider=provider,
                route=route,
                key_name=key_name,
                shard=os.getpid() % SHARDS,
                **{name: amount for name, amount in increments.items()},
            )
    except IntegrityError:  # another thread of this process created it first
        rows.update(**values)
