"""Limit kinds: what each one counts, its default, and where a key overrides it.

Two mechanisms cover every kind:

- SLOTS: a request holds one slot while it runs (a stream until it ends or its
  client hangs up); a slot is a lease that expires, so a process that dies
  holding one frees it by itself.
- WINDOW: each request uses an amount (1 request; later tokens or spend) out of
  a maximum per fixed window of time (a minute).

Adding a kind is one entry in ``KINDS`` (and the setting and ClientKey field it
names): the backends only know the two mechanisms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum


class Mechanism(StrEnum):
    SLOTS = "slots"
    WINDOW = "window"


class LimitKind(StrEnum):
    CONCURRENT_REQUESTS = "concurrent_requests"
    REQUESTS_PER_MINUTE = "requests_per_minute"


@dataclass(frozen=True)
class KindSpec:
    mechanism: Mechanism
    setting: str  # FALLBACK_<setting>: the default for every key
    key_field: str  # the ClientKey field that overrides it (None there: the default)
    description: str  # "{maximum} ..." for the 429 message
    window_s: int = 0  # WINDOW only: the length of one fixed window


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
}


@dataclass(frozen=True)
class Limit:
    """One limit in force: a kind, whose usage it counts (``scope``) and its maximum."""

    kind: LimitKind
    scope: str  # "key:<id>" (h24: "route:<name>", ...)
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
        return int(now // size) * size

    def retry_after_s(self, now: float) -> int:
        """Whole seconds until this limit may let a request in again (at least 1)."""
        if self.mechanism is Mechanism.WINDOW:
            return max(1, math.ceil(self.window_start(now) + self.spec.window_s - now))
        return 1  # a slot frees whenever one of the scope's requests ends

    def describe(self) -> str:
        return self.spec.description.format(maximum=self.maximum)


class LimitExceeded(Exception):
    """A request over `limit`; `retry_after_s` says when to try again."""

    def __init__(self, limit: Limit, retry_after_s: int) -> None:
        super().__init__(f"{limit.scope}: over {limit.describe()}")
        self.limit = limit
        self.retry_after_s = retry_after_s
