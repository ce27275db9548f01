"""Counting limits in the database: works on SQLite and PostgreSQL, no other server.

One transaction per acquire, all or nothing: a slot is a `LimitLease` row
inserted only while fewer than the maximum unexpired rows exist; a window is a
`LimitCounter` row increased only while it stays within the maximum (a new window
resets it). Racing processes are serialised per scope: on PostgreSQL by a
transaction-scoped advisory lock, on SQLite by its one write lock (the settings
open every transaction IMMEDIATE).

On PostgreSQL the whole acquire is one `SELECT` of the function
`fallback_limits_acquire` (migration 0021, which says why): one round trip
instead of one per statement. A release is one statement there as well.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext

from django.db import DatabaseError, connection, transaction
from django.db.models import F

from ..models import LimitCounter, LimitLease
from .kinds import Limit, Mechanism


class DatabaseCounting:
    errors: tuple[type[BaseException], ...] = (DatabaseError,)

    def acquire(
        self, limits: Sequence[Limit], *, token: str, now: float, lease_s: float, amount: int
    ) -> Limit | None:
        """Take every limit or none; the first limit that refused, else None."""
        if connection.vendor == "postgresql":
            return _acquire_postgresql(limits, token=token, now=now, lease_s=lease_s, amount=amount)
        refused = None
        with transaction.atomic(), connection.cursor() as cursor:
            for limit in limits:
                if limit.mechanism is Mechanism.SLOTS:
                    taken = _take_slot(cursor, limit, token, now, now + lease_s)
                else:
                    taken = _use_window(cursor, limit, now, amount)
                if not taken:
                    refused = limit
                    transaction.set_rollback(True)
                    break
        if refused is not None and refused.mechanism is Mechanism.SLOTS:
            # Slots of processes that died: uncounted already, removed here (rare).
            LimitLease.objects.filter(
                scope=refused.scope, kind=refused.kind, expires_at__lte=now
            ).delete()
        return refused

    def adjust(self, limit: Limit, *, window_start: int, delta: int) -> None:
        """Add `delta` (negative: give back) to the window, if it is still the current one."""
        LimitCounter.objects.filter(
            scope=limit.scope, kind=str(limit.kind), window_start=window_start
        ).update(used=F("used") + delta)

    def renew(self, limits: Sequence[Limit], *, token: str, now: float, lease_s: float) -> None:
        LimitLease.objects.filter(token=token).update(expires_at=now + lease_s)

    def release(self, limits: Sequence[Limit], *, token: str) -> None:
        table = connection.ops.quote_name(LimitLease._meta.db_table)
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                # One statement, its own transaction, committed without waiting for the disk.
                cursor.execute(
                    f"WITH quick AS (SELECT {_NO_FSYNC}) "  # noqa: S608
                    f"DELETE FROM {table} WHERE token = %s AND EXISTS (SELECT 1 FROM quick)",
                    [token],
                )
            else:
                cursor.execute(f"DELETE FROM {table} WHERE token = %s", [token])  # noqa: S608


# Leases and counters are short-lived bookkeeping: a crash that loses the last
# few milliseconds of them loses nothing (a lost lease is a freed slot, a lost
# count a request or two). Not waiting for the disk at commit is what keeps a
# request's two writes cheap on PostgreSQL (the transaction only).
_NO_FSYNC = "set_config('synchronous_commit', 'off', true)"


def _acquire_postgresql(
    limits: Sequence[Limit], *, token: str, now: float, lease_s: float, amount: int
) -> Limit | None:
    # Outside a transaction (a request) the SELECT is its own, committed at once;
    # inside one (tests), a savepoint keeps a failure from breaking the caller's.
    savepoint = transaction.atomic() if connection.in_atomic_block else nullcontext()
    with savepoint, connection.cursor() as cursor:
        cursor.execute(
            "SELECT fallback_limits_acquire(%s, %s::float8, %s::float8, %s::bigint, "
            "%s::text[], %s::text[], %s::boolean[], %s::bigint[], %s::bigint[])",
            [
                token,
                now,
                lease_s,
                amount,
                [limit.scope for limit in limits],
                [str(limit.kind) for limit in limits],
                [limit.mechanism is Mechanism.SLOTS for limit in limits],
                [limit.maximum for limit in limits],
                [
                    limit.window_start(now) if limit.mechanism is Mechanism.WINDOW else 0
                    for limit in limits
                ],
            ],
        )
        refused = cursor.fetchone()[0]
    return limits[refused - 1] if refused else None


def _take_slot(cursor, limit: Limit, token: str, now: float, expires_at: float) -> bool:
    table = connection.ops.quote_name(LimitLease._meta.db_table)
    cursor.execute(
        f"INSERT INTO {table} (scope, kind, token, expires_at) SELECT %s, %s, %s, %s "  # noqa: S608
        f"WHERE (SELECT COUNT(*) FROM {table} WHERE scope = %s AND kind = %s "
        "AND expires_at > %s) < %s",
        [
            limit.scope,
            str(limit.kind),
            token,
            expires_at,
            limit.scope,
            str(limit.kind),
            now,
            limit.maximum,
        ],
    )
    return cursor.rowcount == 1


def _use_window(cursor, limit: Limit, now: float, amount: int) -> bool:
    if amount > limit.maximum:
        return False
    table = connection.ops.quote_name(LimitCounter._meta.db_table)
    newer = f"{table}.window_start < excluded.window_start"
    cursor.execute(
        f"INSERT INTO {table} (scope, kind, window_start, used) VALUES (%s, %s, %s, %s) "  # noqa: S608
        "ON CONFLICT (scope, kind) DO UPDATE SET "
        f"used = CASE WHEN {newer} THEN excluded.used ELSE {table}.used + excluded.used END, "
        f"window_start = CASE WHEN {newer} THEN excluded.window_start "
        f"ELSE {table}.window_start END "
        f"WHERE {newer} OR {table}.used + excluded.used <= %s "
        "RETURNING used",
        [limit.scope, str(limit.kind), limit.window_start(now), amount, limit.maximum],
    )
    return cursor.fetchone() is not None
