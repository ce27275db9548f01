"""Reads of the usage ledger: tokens and spend by provider, route, client key and day.

One query per grouping over `UsageLedger` (rows are per day, so any range of
whole UTC days is exact). Money leaves here in dollars as `Decimal`, converted
from the ledger's integer nano-dollars.
"""

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from django.db.models import Sum

from ..models import UsageLedger

NANO = Decimal(10) ** -9
SUMMED = (
    "calls",
    "estimated_calls",
    "failed_attempts",
    "input_tokens",
    "cached_input_tokens",
    "output_tokens",
    "cost_nusd",
    "failed_cost_nusd",
    "failover_extra_nusd",
)
GROUPINGS = {"provider": "provider", "route": "route", "key": "key_name", "day": "day"}


@dataclass(frozen=True)
class UsageLine:
    """The totals of one provider, route, key or day (or of the whole range)."""

    name: str
    calls: int = 0
    estimated_calls: int = 0
    failed_attempts: int = 0
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    cost_nusd: int = 0
    failed_cost_nusd: int = 0
    failover_extra_nusd: int = 0

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def cost_usd(self) -> Decimal:
        return self.cost_nusd * NANO

    @property
    def failed_cost_usd(self) -> Decimal:
        return self.failed_cost_nusd * NANO

    @property
    def failover_extra_usd(self) -> Decimal:
        return self.failover_extra_nusd * NANO


@dataclass(frozen=True)
class UsageReport:
    first_day: date
    last_day: date
    total: UsageLine
    by_provider: list[UsageLine]
    by_route: list[UsageLine]
    by_key: list[UsageLine]
    by_day: list[UsageLine]


def usage_report(*, first_day: date, last_day: date) -> UsageReport:
    """Totals over the UTC days first_day..last_day (both included), largest spend first."""
    rows = UsageLedger.objects.filter(day__gte=first_day, day__lte=last_day)
    total = rows.aggregate(**{name: Sum(name) for name in SUMMED})
    return UsageReport(
        first_day=first_day,
        last_day=last_day,
        total=UsageLine("total", **{name: value or 0 for name, value in total.items()}),
        by_provider=_grouped(rows, "provider"),
        by_route=_grouped(rows, "route"),
        by_key=_grouped(rows, "key"),
        by_day=sorted(_grouped(rows, "day"), key=lambda line: line.name),
    )


def _grouped(rows, grouping: str) -> list[UsageLine]:
    column = GROUPINGS[grouping]
    grouped = rows.values(column).annotate(**{name: Sum(name) for name in SUMMED})
    lines = [
        UsageLine(str(row[column]), **{name: row[name] or 0 for name in SUMMED}) for row in grouped
    ]
    return sorted(lines, key=lambda line: (-line.cost_nusd, -line.tokens, line.name))


def last_days(today: date, count: int) -> tuple[date, date]:
    """The `count` UTC days up to and including `today`."""
    return today - timedelta(days=count - 1), today
