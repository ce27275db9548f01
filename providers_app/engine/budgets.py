"""Budgets per client key and per route: tokens per minute and a monthly spend limit.

Shared by every process through the database (`BudgetCounter`, one row per
scope, name, kind and window), changed only by conditional UPDATEs:

- **Admission** reserves, for each limit in force, what the request may use
  (`reservation_tokens`: the prompt's estimate, 4 characters a token, plus
  `max_tokens`, or FALLBACK_BUDGET_OUTPUT_RESERVE when the request sets none;
  for spend, those tokens at the dearest prices on the route) with
  ``UPDATE ... SET used = used + r WHERE used + r <= limit``. Concurrent
  admissions are serialised by the row lock, so the reservations admitted in a
  window never add up to more than the limit.
- **Settlement**, when the request ends, replaces each reservation by what the
  vendors billed (engine/usage.py charges this admission as it records).

The bound (docs/usage.md, "Budgets"): a window's count passes its limit only by
tokens billed beyond their reservation, at most the sum over the requests in
flight of (billed - reserved). With `max_tokens` set and prompts the vendor
counts at no more than the estimate, that is zero: the limit holds exactly.

Limits are read per process and kept FALLBACK_BUDGET_CACHE_S (5 s), so a
request with no limit in force costs no query at all, and a changed limit
applies everywhere within that time.
"""

import logging
import math
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import F

from ..adapters.base import ChatRequest
from ..adapters.usage import estimate_tokens
from ..conf import get_setting
from ..models import BudgetCounter, ClientKey, Route
from . import metrics
from .clock import get_clock
from .outcomes import FallbackError

logger = logging.getLogger(__name__)

TOKENS, SPEND = "tokens", "spend"
NANO_PER_USD = 10**9
SCOPE_WORDS = {"key": "Client key", "route": "Route"}


@dataclass(frozen=True)
class Limit:
    scope: str  # "key" or "route"
    name: str
    kind: str  # TOKENS (per minute, tokens) or SPEND (per month, nano-dollars)
    amount: int

    def describe(self) -> str:
        if self.kind == TOKENS:
            return f"{self.amount} tokens per minute"
        return f"${Decimal(self.amount) / NANO_PER_USD:.2f} per month"


class BudgetExceeded(FallbackError):
    """A limit would be passed: answered 429 with Retry-After (api/errors.py)."""

    def __init__(self, limit: Limit, *, retry_after_s: int, request_id: str, needed: int):
        self.limit = limit
        self.retry_after_s = retry_after_s
        word = SCOPE_WORDS[limit.scope]
        if limit.kind == TOKENS and needed > limit.amount:
            why = f"this request alone may need {needed} tokens"
        else:
            why = "it is used up in this window"
        super().__init__(
            f"{word} {limit.name!r} is over its budget of {limit.describe()} ({why}); "
            f"retry in {retry_after_s} s.",
            request_id=request_id,
        )

    @property
    def kind_name(self) -> str:
        """The limit's name in the 429 (as the per-key limits of api/limits.py name theirs)."""
        return "tokens_per_minute" if self.limit.kind == TOKENS else "monthly_spend"

    @property
    def maximum(self) -> int | str:
        """Tokens, or dollars as a decimal string."""
        if self.limit.kind == TOKENS:
            return self.limit.amount
        return f"{Decimal(self.limit.amount) / NANO_PER_USD:.2f}"


@dataclass
class _Hold:
    limit: Limit
    window_start: datetime
    reserved: int


@dataclass
class Admission:
    """The reservations of one admitted request; `charge` as vendors bill, then `settle`."""

    holds: list[_Hold]
    tokens: int = 0
    nusd: int = 0
    settled: bool = field(default=False)

    def charge(self, tokens: int, nusd: int) -> None:
        self.tokens += tokens
        self.nusd += nusd

    def settle(self) -> None:
        """Replace each reservation by what was billed (once; errors logged and counted)."""
        if self.settled:
            return
        self.settled = True
        for hold in self.holds:
            billed = self.tokens if hold.limit.kind == TOKENS else self.nusd
            delta = billed - hold.reserved
            if not delta:
                continue
            try:
                _rows(hold.limit, hold.window_start).update(used=F("used") + delta)
            except DatabaseError:
                logger.warning(
                    "budget settlement failed for %s %s", hold.limit.scope, hold.limit.name
                )
                metrics.store_error("budget_settle")


def admit(
    *, key_name: str, route_name: str, request: ChatRequest, dearest: tuple[Decimal, Decimal],
    request_id: str,
) -> Admission | None:  # fmt: skip
    """Reserve this request's share of every budget in force, or raise BudgetExceeded.

    `dearest`: the highest input and output prices ($ per million tokens) on the route.
    None when no limit applies (no query made).
    """
    limits = limits_for(key_name, route_name)
    if not limits:
        return None
    tokens = reservation_tokens(request)
    prompt = tokens - _output_reserve(request)
    nusd = int((prompt * dearest[0] + (tokens - prompt) * dearest[1]) * 1000)
    now = get_clock().now()
    holds: list[_Hold] = []
    try:
        for limit in limits:
            start, end = window_of(limit.kind, now)
            amount = tokens if limit.kind == TOKENS else nusd
            try:
                reserved = _reserve(limit, start, amount)
            except DatabaseError:
                # The budget cannot be counted: the request is served (availability
                # first), unbudgeted, and the store error is counted in /metrics.
                logger.warning(
                    "budget of %s %r not counted: database error", limit.scope, limit.name
                )
                metrics.store_error("budget_reserve")
                continue
            if not reserved:
                retry_after = max(1, math.ceil((end - now).total_seconds()))
                raise BudgetExceeded(
                    limit, retry_after_s=retry_after, request_id=request_id, needed=amount
                )
            holds.append(_Hold(limit, start, amount))
    except BaseException:
        Admission(holds).settle()  # give back what was reserved before the refusal
        raise
    return Admission(holds)


def reservation_tokens(request: ChatRequest) -> int:
    prompt = estimate_tokens("\n".join(message.text for message in request.messages))
    return prompt + _output_reserve(request)


def _output_reserve(request: ChatRequest) -> int:
    return request.max_tokens or get_setting("BUDGET_OUTPUT_RESERVE")


def window_of(kind: str, now: datetime) -> tuple[datetime, datetime]:
    """The fixed UTC window `now` falls in: its minute, or its calendar month."""
    now = now.astimezone(UTC)
    if kind == TOKENS:
        start = now.replace(second=0, microsecond=0)
        return start, start + timedelta(minutes=1)
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    following = (start + timedelta(days=32)).replace(day=1)
    return start, following


def _rows(limit: Limit, start: datetime):
    return BudgetCounter.objects.filter(
        scope=limit.scope, name=limit.name, kind=limit.kind, window_start=start
    )


def _reserve(limit: Limit, start: datetime, amount: int) -> bool:
    """Atomically add `amount` if it fits under the limit (the row lock orders racers)."""
    rows = _rows(limit, start)
    if rows.filter(used__lte=limit.amount - amount).update(used=F("used") + amount):
        return True
    if amount > limit.amount:
        return False
    try:
        with transaction.atomic():
            BudgetCounter.objects.create(
                scope=limit.scope, name=limit.name, kind=limit.kind, window_start=start, used=0
            )
    except IntegrityError:
        pass  # the row existed (full), or another process created it just now
    return bool(rows.filter(used__lte=limit.amount - amount).update(used=F("used") + amount))


# -- limits, read per process ----------------------------------------------------

_cache_lock = threading.Lock()
_cache: dict[tuple[str, str], tuple[float, list[Limit]]] = {}


def limits_for(key_name: str, route_name: str) -> list[Limit]:
    now = time.monotonic()
    max_age = get_setting("BUDGET_CACHE_S")
    key_limits = _cached("key", key_name, now, max_age)
    route_limits = _cached("route", route_name, now, max_age)
    return key_limits + route_limits if key_limits or route_limits else []


def forget_limits() -> None:
    with _cache_lock:
        _cache.clear()


def _cached(scope: str, name: str, now: float, max_age: float) -> list[Limit]:
    if not name:
        return []
    hit = _cache.get((scope, name))  # a dict read is atomic; writes take the lock
    if hit is not None and now - hit[0] < max_age:
        return hit[1]
    model = ClientKey if scope == "key" else Route
    try:
        row = (
            model.objects.filter(name=name)
            .values("tokens_per_minute", "monthly_spend_limit_usd")
            .first()
        ) or {}
    except DatabaseError:
        # Serving through a database outage comes first: the limits last read
        # (none if never read) stand until the database answers again.
        logger.warning("budget limits of %s %r unreadable; last known kept", scope, name)
        metrics.store_error("budget_read")
        return hit[1] if hit is not None else []
    limits = []
    if row.get("tokens_per_minute"):
        limits.append(Limit(scope, name, TOKENS, row["tokens_per_minute"]))
    if row.get("monthly_spend_limit_usd") is not None:
        amount = int(row["monthly_spend_limit_usd"] * NANO_PER_USD)
        limits.append(Limit(scope, name, SPEND, amount))
    with _cache_lock:
        _cache[(scope, name)] = (now, limits)
    return limits
