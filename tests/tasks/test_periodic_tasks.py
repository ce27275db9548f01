"""The beat schedule: declared in code, installed by migration 0003 and by
`manage.py setup_periodic_tasks`, idempotently, without undoing an admin's edits."""

import io

from django.core.management import call_command
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from fallbackproject.celery import app
from providers_app.management.commands.setup_periodic_tasks import periodic_specs

EXPECTED = {
    "providers_app.tasks.dispatch_health_checks": 10,
    "providers_app.tasks.roll_up_call_counters": 300,
    "providers_app.tasks.prune_history": 3600,
    "providers_app.tasks.flush_counters": 60,
    "providers_app.tasks.evaluate_alerts": 30,
}


def _schedule() -> dict[str, int]:
    return {t.task: t.interval.every for t in PeriodicTask.objects.select_related("interval")}


def test_the_migration_installs_every_declared_task(db):
    app.loader.import_default_modules()  # what a worker does at start
    assert _schedule() == EXPECTED
    for task in PeriodicTask.objects.all():
        assert task.enabled
        assert task.interval.period == IntervalSchedule.SECONDS
        assert task.expire_seconds == task.interval.every  # a late run is dropped
        assert task.task in app.tasks  # a name beat sends is one the worker knows


def test_setup_periodic_tasks_is_idempotent_and_keeps_admin_edits(db):
    dispatcher = PeriodicTask.objects.get(task="providers_app.tasks.dispatch_health_checks")
    dispatcher.interval, _ = IntervalSchedule.objects.get_or_create(every=20, period="seconds")
    dispatcher.enabled = False
    dispatcher.save()
    PeriodicTask.objects.filter(task="providers_app.tasks.prune_history").delete()

    out = io.StringIO()
    call_command("setup_periodic_tasks", stdout=out)
    call_command("setup_periodic_tasks", stdout=io.StringIO())

    assert PeriodicTask.objects.count() == len(EXPECTED)
    assert "created  Prune failover history" in out.getvalue()
    dispatcher.refresh_from_db()
    assert (dispatcher.interval.every, dispatcher.enabled) == (20, False)


def test_reset_restores_the_declared_schedule(db, settings):
    settings.FALLBACK_HEALTH_DISPATCH_S = 1
    call_command("setup_periodic_tasks", "--reset", stdout=io.StringIO())
    assert _schedule()["providers_app.tasks.dispatch_health_checks"] == 1
    assert PeriodicTask.objects.count() == len(periodic_specs())
