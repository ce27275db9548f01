"""Operator and background writes: providers import/export/priorities, client keys,
health checks, housekeeping. The per-request path lives in ``engine``."""
