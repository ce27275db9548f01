"""The per-request path: routing, the breaker, retries, failover, counters and events.

Everything a chat request touches between the view and the adapter lives here;
operator and background writes live in ``services``, reads in ``selectors``.
"""
