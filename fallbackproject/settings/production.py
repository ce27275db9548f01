"""Production: everything that must come from the environment has no default here.

This is the default of manage.py, wsgi.py and celery.py, so a process started
without DJANGO_SETTINGS_MODULE never runs with DEBUG on or a known secret: it
refuses to start until the environment provides a strong DJANGO_SECRET_KEY.
"""

import math
import zlib
from collections import Counter

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import env

LOCAL_HINT = (
    "For local development use DJANGO_SETTINGS_MODULE=fallbackproject.settings.local "
    "(make run does)."
)
# Secrets that are published in this repository or in Django's templates.
KNOWN_SECRETS = frozenset({"local-dev-only-not-a-secret", "test-only-not-a-secret", "change-me"})
# Django's own deploy check (security.W009) asks for the same.
SECRET_KEY_MIN_LENGTH = 50
SECRET_KEY_MIN_UNIQUE = 5
# A random 50-character key estimates at about 250 bits below; repeated words or
# patterns (`abcde` x 10, `password` x 7, a published secret twice) at 20-110.
SECRET_KEY_MIN_BITS = 128


def secret_key_entropy_bits(value: str) -> float:
    """A conservative estimate of the entropy in `value`: the Shannon entropy of
    its characters times its length, where the length counted is what zlib
    cannot squeeze out of it (a repeated part counts once)."""
    if not value:
        return 0.0
    counts = Counter(value)
    per_char = -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())
    incompressible = len(zlib.compress(value.encode(), 9)) - 8  # zlib's own header and checksum
    return per_char * max(0, min(len(value), incompressible))


def secret_key_problem(value: str) -> str | None:
    """Why `value` is not a usable production secret, or None."""
    if not value:
        return "DJANGO_SECRET_KEY is not set."
    if value in KNOWN_SECRETS or value.startswith("django-insecure"):
        return "DJANGO_SECRET_KEY is a published default."
    if (
        len(value) < SECRET_KEY_MIN_LENGTH
        or len(set(value)) < SECRET_KEY_MIN_UNIQUE
        or secret_key_entropy_bits(value) < SECRET_KEY_MIN_BITS
    ):
        return (
            "DJANGO_SECRET_KEY is too weak (short, repeated or guessable): use at least "
            f"{SECRET_KEY_MIN_LENGTH} random characters, e.g. "
            "python -c 'import secrets; print(secrets.token_urlsafe(50))'."
        )
    return None


DEBUG = False
SECRET_KEY = env("DJANGO_SECRET_KEY", default="")
if _problem := secret_key_problem(SECRET_KEY):
    raise ImproperlyConfigured(f"{_problem} {LOCAL_HINT}")
if not env("DJANGO_ALLOWED_HOSTS", default=""):
    raise ImproperlyConfigured(f"DJANGO_ALLOWED_HOSTS is not set. {LOCAL_HINT}")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS")

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
# Probes and scrapers call these over plain HTTP inside the network; a redirect
# to HTTPS would fail them (patterns match the path without its leading slash).
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 30)
# Both reach beyond this site (every subdomain; browsers' built-in lists, hard
# to leave), so they are opt-in.
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=False)
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_CONTENT_TYPE_NOSNIFF = True

# The deploy checks warn about the two opt-ins above; when they are off, that is
# the choice written down here, not an oversight.
SILENCED_SYSTEM_CHECKS = [
    *(["security.W005"] if not SECURE_HSTS_INCLUDE_SUBDOMAINS else []),
    *(["security.W021"] if not SECURE_HSTS_PRELOAD else []),
]
