"""The Celery app: wiring, eager tests, and the embedded broker a real worker uses."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from celery import Celery
from django.conf import settings

from fallbackproject import celery_app
from fallbackproject.celery import _create_filesystem_broker_folders

ROOT = Path(__file__).resolve().parents[2]


def test_the_project_exposes_the_app_with_every_task_discovered():
    celery_app.autodiscover_tasks(force=True)  # what a worker does at start
    assert celery_app.main == "fallbackproject"
    assert {
        "providers_app.tasks.dispatch_health_checks",
        "providers_app.tasks.check_provider_health",
        "providers_app.tasks.roll_up_call_counters",
        "providers_app.tasks.prune_history",
        "providers_app.tasks.flush_counters",
        "providers_app.tasks.deliver_alert",
        "providers_app.tasks.evaluate_alerts",
    } <= set(celery_app.tasks)


def test_tests_run_tasks_eagerly_and_beat_reads_the_database():
    assert celery_app.conf.task_always_eager
    assert celery_app.conf.beat_scheduler == "django_celery_beat.schedulers:DatabaseScheduler"


def test_the_filesystem_broker_folders_are_created_when_the_app_configures(tmp_path):
    folder = tmp_path / "celery" / "queue"
    app = Celery(
        "probe",
        broker="filesystem://localhost//",
        broker_transport_options={
            "data_folder_in": str(folder),
            "data_folder_out": str(folder),
            "control_folder": str(tmp_path / "celery" / "control"),
        },
    )
    _create_filesystem_broker_folders(sender=app)
    assert folder.is_dir()
    assert (tmp_path / "celery" / "control").is_dir()


def test_a_real_worker_runs_a_task_sent_through_the_embedded_broker(tmp_path):
    """No server: kombu's filesystem transport, in and out in one folder."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "fallbackproject.settings.local",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'unused.sqlite3'}",
        "CELERY_BROKER_URL": "filesystem://localhost//",
        "CELERY_FILESYSTEM_BROKER_DIR": str(tmp_path / "broker"),
        "DJANGO_LOG_LEVEL": "INFO",
    }
    queue = tmp_path / "broker" / "queue"
    sender = Celery(
        "sender",
        broker="filesystem://localhost//",
        broker_transport_options={
            "data_folder_in": str(queue),
            "data_folder_out": str(queue),
            "control_folder": str(tmp_path / "broker" / "control"),
        },
    )
    _create_filesystem_broker_folders(sender=sender)
    # Sent before the worker starts: the message waits in the folder.
    sender.send_task("providers_app.tasks.flush_counters")
    log = tmp_path / "worker.log"
    with log.open("w") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "fallbackproject", "worker", "--pool", "solo",
             "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "INFO"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        give_up = time.monotonic() + 30
        while time.monotonic() < give_up and "succeeded" not in log.read_text():
            if worker.poll() is not None:
                break
            time.sleep(0.1)
    finally:
        worker.terminate()
        worker.wait(timeout=10)
    text = log.read_text()
    assert "providers_app.tasks.flush_counters" in text, text
    assert "succeeded" in text, text
    assert not list(queue.iterdir())  # consumed


def test_settings_default_to_the_embedded_broker():
    """Without CELERY_BROKER_URL every settings module but the tests' uses it."""
    if "CELERY_BROKER_URL" in os.environ:
        pytest.skip("CELERY_BROKER_URL is set in this environment")
    from fallbackproject.settings import base

    assert base.CELERY_BROKER_URL == "filesystem://localhost//"
    options = base.CELERY_BROKER_TRANSPORT_OPTIONS
    assert options["data_folder_in"] == options["data_folder_out"]
    assert settings.CELERY_BROKER_URL.startswith("memory://")
