"""With these settings, tests run faster."""

from .base import *  # noqa: F403
from .base import env

DEBUG = False
SECRET_KEY = "test-only-not-a-secret"  # noqa: S105
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://")}

# Celery runs tasks inline: a test calls `task.delay()` and sees the effect.
CELERY_BROKER_URL = "memory://localhost/"
CELERY_BROKER_TRANSPORT_OPTIONS: dict = {}
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True

# django-axes stays on (the throttling tests use the real configuration); its
# per-login INFO lines would drown the output. Sign in with `client.force_login`:
# axes refuses `client.login`, which authenticates without a request.
LOGGING = {**LOGGING, "loggers": {"axes": {"level": "WARNING"}}}  # noqa: F405

# Key bindings (providers_app/outbound.py): the suite's own variables may reach
# any host (its upstreams are local simulators and `responses` mocks); the
# vendors' variables also reach the local simulators. Tests of the production
# default set FALLBACK_KEY_HOSTS back to [].
FALLBACK_KEY_HOSTS = [
    "FB_*=*",
    "FIXTURE_REPLAY_API_KEY=*",
    "FIDELITY_TEST_KEY=*",
    "SIM_API_KEY=*",
    "*_API_KEY=127.0.0.1|localhost",
]
