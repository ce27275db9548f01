"""Install the beat schedule declared in `manage.py setup_periodic_tasks` (idempotent)."""

from django.db import migrations


def install(apps, schema_editor):
    from providers_app.management.commands.setup_periodic_tasks import periodic_tasks_install

    periodic_tasks_install(
        periodic_task_model=apps.get_model("django_celery_beat", "PeriodicTask"),
        interval_model=apps.get_model("django_celery_beat", "IntervalSchedule"),
        periodic_tasks_model=apps.get_model("django_celery_beat", "PeriodicTasks"),
    )


class Migration(migrations.Migration):
    dependencies = [
        ("providers_app", "0002_history_rollup_dashboard"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(install, migrations.RunPython.noop)]
