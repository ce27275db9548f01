"""Limit kinds: what each one counts, its default, and where a key overrides it.

Two mechanisms cover every kind:

- SLOTS: a request holds one slot while it runs (a stream until it ends or its
  client hangs up); a slot is a lease that expires, so a process that dies
  holding one frees it by itself.
- WINDOW: each request uses an amount (1 request, its tokens, its spend in
  nano-dollars) out of a maximum per fixed window of time (a minute, or a UTC
  calendar month). A budget's amount is a reservation, replaced by what was
  billed when the request ends (`limits.adjust`).

Adding a kind is one entry in ``KINDS`` (and, for a fairness kind, the setting
and ClientKey field it names; budget kinds are read by engine/budgets.py from
the key's and route's fields): the backends only know the two mechanisms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum


class Mechanism(StrEnum):
    SLOTS = "slots"
    WINDOW = "window"


class LimitKind(StrEnum):
    CONCURRENT_REQUESTS = "concurrent_requests"
    REQUESTS_PER_MINUTE = "requests_per_minute"
    TOKENS_PER_MINUTE = "tokens_per_minute"  # budgets (engine/budgets.py)
    MONTHLY_SPEND = "monthly_spend"  # budgets, in nano-dollars


NANO_PER_USD = 10**9
MONTHLY = -1  # window_s of a UTC calendar month


@dataclass(frozen=True)
class KindSpec:
    mechanism: Mechanism
    setting: str  # FALLBACK_<setting>: the default for every key ("": a budget)
    key_field: str  # the ClientKey field that overrides it (None there: the default)
    description: str  # "{maximum} ..." (or "{dollars}") for the 429 message
    window_s: int = 0  # WINDOW only: the length of one fixed window (MONTHLY: a month)


KINDS: dict[LimitKind, KindSpec] = {
    LimitKind.CONCURRENT_REQUESTS: KindSpec(
        mechanism=Mechanism.SLOTS,
        setting="KEY_CONCURRENT_REQUESTS",
        key_field="max_concurrent_requests",
        description="{maximum} concurrent requests",
    ),
    LimitKind.REQUESTS_PER_MINUTE: KindSpec(
        mechanism=Mechanism.WINDOW,
        setting="KEY_REQUESTS_PER_MINUTE",
        key_field="requests_per_minute",
        description="{maximum} requests per minute",
        window_s=60,
    ),
    LimitKind.TOKENS_PER_MINUTE: KindSpec(
        mechanism=Mechanism.WINDOW,
        setting="",
        key_field="tokens_per_minute",
        description="{maximum} tokens per minute",
        window_s=60,
    ),
    LimitKind.MONTHLY_SPEND: KindSpec(
        mechanism=Mechanism.WINDOW,
        setting="",
        key_field="monthly_spend_limit_usd",
        description="${dollars} per month",
        window_s=MONTHLY,
    ),
}


@dataclass(frozen=True)
class Limit:
    """One limit in force: a kind, whose usage it counts (``scope``) and its maximum."""

    kind: LimitKind
    scope: str  # "key:<id>" or "route:<id>"
    maximum: int

    @property
    def spec(self) -> KindSpec:
        return KINDS[self.kind]

    @property
    def mechanism(self) -> Mechanism:
        return KINDS[self.kind].mechanism

    def window_start(self, now: float) -> int:
        """The start (epoch seconds) of the window `now` falls in (WINDOW kinds)."""
        size = self.spec.window_s
        if size == MONTHLY:
            day = datetime.fromtimestamp(now, UTC)
            return int(day.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp())
        return int(now // size) * size

    def window_end(self, now: float) -> int:
        """The end (epoch seconds) of the window `now` falls in (WINDOW kinds)."""
        start = self.window_start(now)
        if self.spec.window_s == MONTHLY:
            first = datetime.fromtimestamp(start, UTC)
            return int((first + timedelta(days=32)).replace(day=1).timestamp())
        return start + self.spec.window_s

    def retry_after_s(self, now: float) -> int:
        """Whole seconds until this limit may let a request in again (at least 1)."""
        if self.mechanism is Mechanism.WINDOW:
            return max(1, math.ceil(self.window_end(now) - now))
        return 1  # a slot frees whenever one of the scope's requests ends

    def describe(self) -> str:
        dollars = f"{Decimal(self.maximum) / NANO_PER_USD:.2f}"
        return self.spec.description.format(maximum=self.maximum, dollars=dollars)


class LimitExceeded(Exception):
    """A request over `limit`; `retry_after_s` says when to try again."""

    def __init__(self, limit: Limit, retry_after_s: int) -> None:
        super().__init__(f"{limit.scope}: over {limit.describe()}")
        self.limit = limit
        self.retry_after_s = retry_after_s
