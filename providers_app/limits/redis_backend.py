"""Counting limits in Redis: one round trip per acquire, a Lua script all or nothing.

A slot limit is a sorted set of lease tokens scored by expiry (expired ones are
dropped before counting); a window is a counter whose key names its window and
expires after it. Expiries are relative (PEXPIRE), so the application's clock
and Redis's need not agree.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import redis

from .kinds import Limit, Mechanism

_ACQUIRE = """
local now = tonumber(ARGV[1])
local lease_s = tonumber(ARGV[2])
local token = ARGV[3]
local amount = tonumber(ARGV[4])
for i, key in ipairs(KEYS) do
  local base = 4 + (i - 1) * 3
  local maximum = tonumber(ARGV[base + 2])
  if ARGV[base + 1] == "slots" then
    redis.call("ZREMRANGEBYSCORE", key, "-inf", now)
    if redis.call("ZCARD", key) >= maximum then return i end
  else
    local used = tonumber(redis.call("GET", key) or "0")
    if used + amount > maximum then return i end
  end
end
for i, key in ipairs(KEYS) do
  local base = 4 + (i - 1) * 3
  if ARGV[base + 1] == "slots" then
    redis.call("ZADD", key, now + lease_s, token)
    redis.call("PEXPIRE", key, math.ceil(lease_s * 1000) + 1000)
  else
    redis.call("INCRBY", key, amount)
    redis.call("PEXPIRE", key, math.ceil(tonumber(ARGV[base + 3]) * 1000) + 1000)
  end
end
return 0
"""

# A window already gone (expired) is left gone: INCRBY would recreate it without expiry.
_ADJUST = """
if redis.call("EXISTS", KEYS[1]) == 1 then redis.call("INCRBY", KEYS[1], ARGV[1]) end
return 0
"""

_clients: dict[str, redis.Redis] = {}
_clients_lock = threading.Lock()


def _client(url: str) -> redis.Redis:
    with _clients_lock:
        if url not in _clients:
            # Short timeouts: an unreachable Redis costs a request half a second
            # at most, and the limiter then lets it through (limits/__init__.py).
            _clients[url] = redis.Redis.from_url(
                url, socket_timeout=0.5, socket_connect_timeout=0.5
            )
        return _clients[url]


def _key(limit: Limit, now: float) -> str:
    key = f"fallback:limit:{limit.scope}:{limit.kind}"
    if limit.mechanism is Mechanism.WINDOW:
        key += f":{limit.window_start(now)}"
    return key


class RedisCounting:
    errors: tuple[type[BaseException], ...] = (redis.RedisError,)

    def __init__(self, url: str) -> None:
        self._redis = _client(url)
        self._acquire = self._redis.register_script(_ACQUIRE)
        self._adjust = self._redis.register_script(_ADJUST)

    def acquire(
        self, limits: Sequence[Limit], *, token: str, now: float, lease_s: float, amount: int
    ) -> Limit | None:
        args: list = [now, lease_s, token, amount]
        for limit in limits:
            ttl = limit.window_end(now) - now if limit.mechanism is Mechanism.WINDOW else 0
            args += [str(limit.mechanism), limit.maximum, ttl]
        refused = int(self._acquire(keys=[_key(limit, now) for limit in limits], args=args))
        return limits[refused - 1] if refused else None

    def adjust(self, limit: Limit, *, window_start: int, delta: int) -> None:
        window = f"fallback:limit:{limit.scope}:{limit.kind}:{window_start}"  # as _key names it
        self._adjust(keys=[window], args=[delta])

    def renew(self, limits: Sequence[Limit], *, token: str, now: float, lease_s: float) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for limit in limits:
            if limit.mechanism is Mechanism.SLOTS:
                pipe.zadd(_key(limit, now), {token: now + lease_s}, xx=True)
                pipe.pexpire(_key(limit, now), int(lease_s * 1000) + 1000)
        pipe.execute()

    def release(self, limits: Sequence[Limit], *, token: str) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for limit in limits:
            if limit.mechanism is Mechanism.SLOTS:
                pipe.zrem(_key(limit, 0), token)
        pipe.execute()
