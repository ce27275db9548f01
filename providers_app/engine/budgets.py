"""Budgets per client key and per route: tokens per minute and a monthly spend limit,
taken as two more kinds of the per-key limits (providers_app/limits: counted in
the database, or in Redis when FALLBACK_LIMITS_REDIS_URL is set).

- **Admission** reserves, for each budget in force, what the request may use
  (`reservation_tokens`: the prompt's estimate, 4 characters a token, plus
  `max_tokens`, or FALLBACK_BUDGET_OUTPUT_RESERVE when the request sets none;
  for spend, those tokens at the dearest prices on the route) as the amount of
  a window limit: taken only if the window's count stays within the maximum,
  atomically in the store, so the reservations admitted in a window never add
  up to more than the limit.
- **Settlement**, when the request ends, replaces each reservation by what the
  vendors billed (`limits.adjust`; engine/usage.py charges this admission as it
  records). A request settled after its window ended changes nothing.

The bound (docs/usage.md, "Budgets"): a window's count passes its limit only by
tokens billed beyond their reservation, at most the sum over the requests in
flight of (billed - reserved). With `max_tokens` set and prompts the vendor
counts at no more than the estimate, that is zero: the limit holds exactly.

This module only says which budgets are in force and turns a refusal into
BudgetExceeded. Limits are read per process and kept FALLBACK_BUDGET_CACHE_S
(5 s), so a request with no budget in force costs no query at all, and a
changed limit applies everywhere within that time.
"""

import logging
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import DatabaseError

from .. import limits as limiter
from ..adapters.base import ChatRequest
from ..adapters.usage import estimate_tokens
from ..conf import get_setting
from ..limits.kinds import NANO_PER_USD, LimitKind
from ..models import ClientKey, Route
from . import metrics
from .clock import get_clock
from .outcomes import FallbackError

logger = logging.getLogger(__name__)

TOKENS, SPEND = LimitKind.TOKENS_PER_MINUTE, LimitKind.MONTHLY_SPEND
SCOPE_WORDS = {"key": "Client key", "route": "Route"}


@dataclass(frozen=True)
class Budget:
    """A budget in force: a limit of the limiter, and whose it is (for the 429)."""

    scope: str  # "key" or "route"
    name: str
    limit: limiter.Limit  # kind TOKENS (tokens) or SPEND (nano-dollars)

    @property
    def kind(self) -> LimitKind:
        return self.limit.kind


class BudgetExceeded(FallbackError):
    """A budget would be passed: answered 429 with Retry-After (api/errors.py)."""

    def __init__(self, budget: Budget, *, retry_after_s: int, request_id: str, needed: int):
        self.budget = budget
        self.retry_after_s = retry_after_s
        limit = budget.limit
        if limit.kind == TOKENS and needed > limit.maximum:
            why = f"this request alone may need {needed} tokens"
        else:
            why = "it is used up in this window"
        super().__init__(
            f"{SCOPE_WORDS[budget.scope]} {budget.name!r} is over its budget of "
            f"{limit.describe()} ({why}); retry in {retry_after_s} s.",
            request_id=request_id,
        )

    @property
    def kind_name(self) -> str:
        """The limit's name in the 429 (as the per-key limits of api/limits.py name theirs)."""
        return str(self.budget.kind)

    @property
    def maximum(self) -> int | str:
        """Tokens, or dollars as a decimal string."""
        if self.budget.kind == TOKENS:
            return self.budget.limit.maximum
        return f"{Decimal(self.budget.limit.maximum) / NANO_PER_USD:.2f}"


@dataclass
class _Hold:
    limit: limiter.Limit
    window_start: int
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
            limiter.adjust(hold.limit, window_start=hold.window_start, delta=billed - hold.reserved)


def admit(
    *, key_name: str, route_name: str, request: ChatRequest, dearest: tuple[Decimal, Decimal],
    request_id: str,
) -> Admission | None:  # fmt: skip
    """Reserve this request's share of every budget in force, or raise BudgetExceeded.

    `dearest`: the highest input and output prices ($ per million tokens) on the route.
    None when no budget applies (no query made).
    """
    budgets = limits_for(key_name, route_name)
    if not budgets:
        return None
    tokens = reservation_tokens(request)
    prompt = tokens - _output_reserve(request)
    nusd = int((prompt * dearest[0] + (tokens - prompt) * dearest[1]) * 1000)
    now = get_clock().now().timestamp()
    holds: list[_Hold] = []
    try:
        for budget in budgets:
            amount = tokens if budget.kind == TOKENS else nusd
            try:
                lease = limiter.acquire([budget.limit], amount=amount, now=now)
            except limiter.LimitExceeded as exceeded:
                raise BudgetExceeded(
                    budget,
                    retry_after_s=exceeded.retry_after_s,
                    request_id=request_id,
                    needed=amount,
                ) from None
            if lease.counted:  # else the store could not count: served, unbudgeted
                holds.append(_Hold(budget.limit, budget.limit.window_start(now), amount))
    except BaseException:
        Admission(holds).settle()  # give back what was reserved before the refusal
        raise
    return Admission(holds)


def reservation_tokens(request: ChatRequest) -> int:
    prompt = estimate_tokens("\n".join(message.text for message in request.messages))
    return prompt + _output_reserve(request)


def _output_reserve(request: ChatRequest) -> int:
    return request.max_tokens or get_setting("BUDGET_OUTPUT_RESERVE")


# -- limits, read per process ----------------------------------------------------

_cache_lock = threading.Lock()
_cache: dict[tuple[str, str], tuple[float, list[Budget]]] = {}


def limits_for(key_name: str, route_name: str) -> list[Budget]:
    now = time.monotonic()
    max_age = get_setting("BUDGET_CACHE_S")
    key_limits = _cached("key", key_name, now, max_age)
    route_limits = _cached("route", route_name, now, max_age)
    return key_limits + route_limits if key_limits or route_limits else []


def forget_limits() -> None:
    with _cache_lock:
        _cache.clear()


def _cached(scope: str, name: str, now: float, max_age: float) -> list[Budget]:
    if not name:
        return []
    hit = _cache.get((scope, name))  # a dict read is atomic; writes take the lock
    if hit is not None and now - hit[0] < max_age:
        return hit[1]
    model = ClientKey if scope == "key" else Route
    try:
        row = (
            model.objects.filter(name=name)
            .values("pk", "tokens_per_minute", "monthly_spend_limit_usd")
            .first()
        ) or {}
    except DatabaseError:
        # Serving through a database outage comes first: the limits last read
        # (none if never read) stand until the database answers again.
        logger.warning("budget limits of %s %r unreadable; last known kept", scope, name)
        metrics.store_error("budget_read")
        return hit[1] if hit is not None else []
    limits = []
    where = f"{scope}:{row.get('pk')}"  # the limiter's scope, as key_limits names a key's
    if row.get("tokens_per_minute"):
        limit = limiter.Limit(TOKENS, where, row["tokens_per_minute"])
        limits.append(Budget(scope, name, limit))
    if row.get("monthly_spend_limit_usd") is not None:
        amount = int(row["monthly_spend_limit_usd"] * NANO_PER_USD)
        limits.append(Budget(scope, name, limiter.Limit(SPEND, where, amount)))
    with _cache_lock:
        _cache[(scope, name)] = (now, limits)
    return limits
