"""Settings shared by every environment, read from the environment with django-environ.

Every variable is listed with a safe example in `.env.example`.
"""

from datetime import timedelta
from pathlib import Path

import environ

from fallbackproject.serving import web_threads
from providers_app.conf import DEFAULTS as FALLBACK_DEFAULTS
from providers_app.conf import settings_validate

BASE_DIR = Path(__file__).resolve().parent.parent.parent
env = environ.Env()

if env.bool("DJANGO_READ_DOT_ENV_FILE", default=False):
    env.read_env(str(BASE_DIR / ".env"))

# ---------------------------------------------------------------------------
# Core (https://docs.djangoproject.com/en/5.2/ref/settings/)
# ---------------------------------------------------------------------------
DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env("DJANGO_SECRET_KEY", default="")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "adminsortable2",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_celery_beat",
    "axes",
    "providers_app",
    "providers_app.dashboard",  # its own templates, static files and admin entry
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: turns a locked-out login into a 429 page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "fallbackproject.urls"
WSGI_APPLICATION = "fallbackproject.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# ---------------------------------------------------------------------------
# Database and cache (https://django-environ.readthedocs.io/)
# ---------------------------------------------------------------------------
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web server, the worker and beat read while one of them writes.
    # IMMEDIATE transactions take the write lock up front, so two processes
    # updating a breaker queue on the timeout instead of failing "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "init_command": "PRAGMA journal_mode=WAL;",
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
        }
    )
    # Each server thread keeps its own connection: opening one (and its PRAGMA)
    # on every request cost CPU that threaded workers share.
    DATABASES["default"]["CONN_MAX_AGE"] = None
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # A pool per process (psycopg_pool): a request takes a connection for its
    # database reads and gives it back while it waits on the upstream
    # (engine/adapter_pool.py), so a few connections serve every thread. The cap
    # follows the thread count up to DJANGO_DB_POOL_MAX_SIZE, so that
    # workers x cap stays under the server's max_connections.
    # Timeouts sit well below the 45 s request deadline: a hung or unreachable
    # database fails a read in seconds, and the engine answers from its last
    # routing snapshot (docs/operations.md, "Serving through a database outage").
    # https://docs.djangoproject.com/en/5.2/ref/databases/#connection-pool
    # Django's backend plus: fail fast for a while after a failed connect.
    DATABASES["default"]["ENGINE"] = "fallbackproject.db.postgresql"
    DATABASE_RETRY_AFTER_FAILURE_S = env.float("DJANGO_DB_RETRY_AFTER_FAILURE_S", default=2.0)
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # the pool keeps connections, not Django
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = env.bool("DJANGO_DB_HEALTH_CHECKS", default=True)
    _statement_timeout_ms = env.int("DJANGO_DB_STATEMENT_TIMEOUT_MS", default=5000)
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "connect_timeout": env.int("DJANGO_DB_CONNECT_TIMEOUT_S", default=3),
            "options": f"-c statement_timeout={_statement_timeout_ms}",
            "pool": {
                "min_size": env.int("DJANGO_DB_POOL_MIN_SIZE", default=2),
                "max_size": max(
                    2, min(web_threads(), env.int("DJANGO_DB_POOL_MAX_SIZE", default=20))
                ),
                # How long a thread waits for a free connection before its read
                # fails (and is served from the snapshot).
                "timeout": env.float("DJANGO_DB_POOL_TIMEOUT_S", default=2.0),
            },
        }
    )
# Behind PgBouncer in transaction pooling (docs/operations.md, "PgBouncer"):
# consecutive statements may run on different server connections, so nothing
# may rely on session state. No server-side prepared statements (Django 5.2's
# default for psycopg 3, pinned here so an OPTIONS override cannot turn them
# on) and no server-side cursors (QuerySet.iterator);
# no `options` startup parameter (PgBouncer refuses it: set statement_timeout on
# the database or role instead); and routing reads its version row on each
# request, because LISTEN/NOTIFY does not pass transaction pooling
# (providers_app/engine/routing.py).
DATABASE_BEHIND_PGBOUNCER = env.bool("DJANGO_DB_PGBOUNCER", default=False)
if DATABASE_BEHIND_PGBOUNCER and DATABASES["default"]["ENGINE"] == "fallbackproject.db.postgresql":
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
    DATABASES["default"]["OPTIONS"].pop("options", None)
    DATABASES["default"]["OPTIONS"]["prepare_threshold"] = None
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://")}

# ---------------------------------------------------------------------------
# Internationalisation and static files
# ---------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
# 24-hour times and ISO dates on every screen, forms and read-only fields included
# (Django's English formats say "Dec. 8, 2026, midnight").
FORMAT_MODULE_PATH = ["fallbackproject.formats"]
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "static"
LOGIN_URL = "admin:login"

# ---------------------------------------------------------------------------
# Sign-in: password rules and login throttling (django-axes,
# https://django-axes.readthedocs.io/). Axes counts failed logins on
# /admin/login/ and /chat/login/ (every form that calls authenticate() with the
# request) and answers 429 once a username has failed DJANGO_AXES_FAILURE_LIMIT
# times from one address, for DJANGO_AXES_COOLOFF_MINUTES. Locking on the pair
# (not the username alone) keeps a stranger from locking the admins out.
# ---------------------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses locked-out attempts
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("DJANGO_AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("DJANGO_AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# The address is REMOTE_ADDR: behind a reverse proxy that is the proxy's, so the
# pair degrades to "this username", which still stops guessing (see docs/operations.md).
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# ---------------------------------------------------------------------------
# Logging: one structured line per event; providers_app logs with `extra=`.
# ---------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("DJANGO_LOG_LEVEL", default="INFO")},
    # django-axes announces its configuration at every start, commands included;
    # failed and locked-out logins (axes.handlers) are still logged.
    "loggers": {"axes.apps": {"level": "WARNING"}},
}

# ---------------------------------------------------------------------------
# The failover layer: FALLBACK_<NAME> for every key of providers_app.conf.DEFAULTS,
# each overridable from the environment with the same name.
# ---------------------------------------------------------------------------
for _name, _default in FALLBACK_DEFAULTS.items():
    globals()[f"FALLBACK_{_name}"] = env(f"FALLBACK_{_name}", cast=type(_default), default=_default)
# Refuse to start with values that would break the layer or delete history.
settings_validate({name: globals()[f"FALLBACK_{name}"] for name in FALLBACK_DEFAULTS})

# ---------------------------------------------------------------------------
# Celery (https://docs.celeryq.dev/en/stable/userguide/configuration.html) and
# django-celery-beat (https://django-celery-beat.readthedocs.io/): worker and beat.
# ---------------------------------------------------------------------------
# Redis in production (redis://host:6379/0). The default is kombu's filesystem
# transport: an embedded broker that needs no server, for `make run` on one
# machine (see docs/operations.md for what it does not do).
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="filesystem://localhost//")
CELERY_FILESYSTEM_BROKER_DIR = Path(
    env("CELERY_FILESYSTEM_BROKER_DIR", default=str(BASE_DIR / "var" / "celery"))
)
if CELERY_BROKER_URL.startswith("filesystem://"):
    # One folder for "in" and "out": every process both publishes and consumes
    # there. fallbackproject.celery creates the folders when the app configures.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_FILESYSTEM_BROKER_DIR / "queue"),
        "data_folder_out": str(CELERY_FILESYSTEM_BROKER_DIR / "queue"),
        "control_folder": str(CELERY_FILESYSTEM_BROKER_DIR / "control"),
        "processed_folder": str(CELERY_FILESYSTEM_BROKER_DIR / "processed"),
        "store_processed": False,
    }
    # Broadcast (remote control) queues of stopped workers would collect files forever.
    CELERY_WORKER_ENABLE_REMOTE_CONTROL = False
CELERY_TASK_DEFAULT_QUEUE = env("CELERY_TASK_DEFAULT_QUEUE", default="celery")
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True  # tasks write their outcome to the database
CELERY_RESULT_BACKEND = None
CELERY_TIMEZONE = TIME_ZONE
CELERY_ENABLE_UTC = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1  # short tasks with expiries: do not hoard them
CELERY_WORKER_HIJACK_ROOT_LOGGER = False  # keep the LOGGING above
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=240)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=300)
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"

# ---------------------------------------------------------------------------
# Prometheus: with PROMETHEUS_MULTIPROC_DIR set (gunicorn, several workers),
# prometheus_client keeps each process's values in files there and /metrics adds
# them up. See fallbackproject/gunicorn.conf.py.
# ---------------------------------------------------------------------------
PROMETHEUS_MULTIPROC_DIR = env("PROMETHEUS_MULTIPROC_DIR", default="")
