"""Exit 0 once a service answers, 1 if it does not within a few seconds.

Usage: wait_for.py postgres URL | wait_for.py redis URL
"""

import sys
import time


def _postgres(url: str) -> None:
    import psycopg

    psycopg.connect(url, connect_timeout=2).close()


def _redis(url: str) -> None:
    import redis

    redis.Redis.from_url(url, socket_connect_timeout=2).ping()


def main() -> int:
    kind, url = sys.argv[1], sys.argv[2]
    probe = {"postgres": _postgres, "redis": _redis}[kind]
    for _ in range(10):
        try:
            probe(url)
            return 0
        except Exception as exc:  # any failure means "not yet"
            last = exc
            time.sleep(0.5)
    print(f"{kind} at {url} did not answer: {last}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
