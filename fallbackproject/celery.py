"""The Celery app: configured from Django settings (CELERY_*), tasks autodiscovered.

Run a worker with `celery -A fallbackproject worker` and beat with
`celery -A fallbackproject beat` (the schedule lives in the database, see
`manage.py setup_periodic_tasks`).
"""

import logging
import os
from pathlib import Path

from celery import Celery
from celery.signals import worker_process_shutdown

# Production unless told otherwise, as in manage.py: a worker started without
# DJANGO_SETTINGS_MODULE refuses to run rather than run with a known secret.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fallbackproject.settings.production")

logger = logging.getLogger(__name__)

app = Celery("fallbackproject")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_configure.connect
def _create_filesystem_broker_folders(sender: Celery, **kwargs) -> None:
    """kombu's filesystem transport expects its folders to exist; every process
    (web, worker, beat) may publish, so each makes sure they do."""
    if not str(sender.conf.broker_url or "").startswith("filesystem://"):
        return
    options = sender.conf.broker_transport_options or {}
    for key in ("data_folder_in", "data_folder_out", "control_folder", "processed_folder"):
        if options.get(key):
            Path(options[key]).mkdir(parents=True, exist_ok=True)


@worker_process_shutdown.connect
def _flush_counters_on_exit(**kwargs) -> None:
    """A worker process that made calls leaves its buffered counters, and the
    count of coalesced all-failed outcomes, in the database."""
    try:
        from providers_app.engine import counters
        from providers_app.engine.events import all_failed_events

        counters.flush_pending()
        all_failed_events.flush()
    except Exception:  # shutting down: never block the exit
        logger.exception("could not flush call counters at worker shutdown")
