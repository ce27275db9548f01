"""`manage.py setup_periodic_tasks`: the beat schedule, declared in code, installed in the database.

Beat reads django-celery-beat's tables (DatabaseScheduler), so admins see and
change schedules under "Periodic tasks" in the admin. This command (and
migration 0003) installs the tasks below idempotently: a missing task is
created, an existing one is left as an admin may have changed it, unless
`--reset` puts every declared task back to its declared schedule.
"""

import json
from dataclasses import dataclass

from django.core.management.base import BaseCommand
from django.utils import timezone

from providers_app.conf import get_setting


@dataclass(frozen=True)
class PeriodicSpec:
    name: str
    task: str
    every_s: int
    description: str

    @property
    def expire_seconds(self) -> int:
        # A run that could not start before the next one is due is dropped.
        return max(self.every_s, 1)


def periodic_specs() -> tuple[PeriodicSpec, ...]:
    dispatch_s = max(round(float(get_setting("HEALTH_DISPATCH_S"))), 1)
    return (
        PeriodicSpec(
            "Dispatch provider health checks",
            "providers_app.tasks.dispatch_health_checks",
            dispatch_s,
            "Enqueues a health check for each enabled provider that is due (30 s while "
            "closed, 10 s while open, with jitter).",
        ),
        PeriodicSpec(
            "Roll up call counters",
            "providers_app.tasks.roll_up_call_counters",
            300,
            "Hourly rows for the dashboard charts; prunes one-second buckets of finished hours.",
        ),
        PeriodicSpec(
            "Prune failover history",
            "providers_app.tasks.prune_history",
            3600,
            "Deletes events and health results older than FALLBACK_EVENT_RETENTION_DAYS.",
        ),
        PeriodicSpec(
            "Evaluate alerts",
            "providers_app.tasks.evaluate_alerts",
            30,
            "Opens or resolves the failover-rate incident and ends route-down incidents; "
            "sends their alerts once (services/alerts.py).",
        ),
        PeriodicSpec(
            "Flush worker call counters",
            "providers_app.tasks.flush_counters",
            60,
            "Writes the buffered call counters of the worker process that runs it.",
        ),
    )


def periodic_tasks_install(
    *,
    periodic_task_model,
    interval_model,
    periodic_tasks_model,
    reset: bool = False,
    specs: tuple[PeriodicSpec, ...] | None = None,
) -> tuple[list[str], list[str]]:
    """Create missing tasks (and with `reset`, restore existing ones). Returns
    (created, updated) names. The models are parameters so that a migration can
    pass its historical models."""
    created, updated = [], []
    for spec in specs or periodic_specs():
        interval, _ = interval_model.objects.get_or_create(every=spec.every_s, period="seconds")
        values = {
            "task": spec.task,
            "interval": interval,
            "crontab": None,
            "solar": None,
            "clocked": None,
            "expire_seconds": spec.expire_seconds,
            "expires": None,
            "enabled": True,
            "one_off": False,
            "description": spec.description,
            "args": json.dumps([]),
            "kwargs": json.dumps({}),
        }
        existing = periodic_task_model.objects.filter(name=spec.name).first()
        if existing is None:
            periodic_task_model.objects.create(name=spec.name, **values)
            created.append(spec.name)
        elif reset:
            for field, value in values.items():
                setattr(existing, field, value)
            existing.save()
            updated.append(spec.name)
    if created or updated:
        # Beat reloads its schedule when this timestamp moves (historical models
        # in migrations do not run PeriodicTask.save()'s own bump).
        periodic_tasks_model.objects.update_or_create(
            ident=1, defaults={"last_update": timezone.now()}
        )
    return created, updated


class Command(BaseCommand):
    help = "Install the beat schedule (health checks, roll-up, pruning) in the database."

    def add_arguments(self, parser):
        parser.add_argument(
            "--reset",
            action="store_true",
            help="Put existing tasks back to their declared schedule (undoes admin edits).",
        )

    def handle(self, *args, reset: bool, **options):
        from django_celery_beat.models import IntervalSchedule, PeriodicTask, PeriodicTasks

        created, updated = periodic_tasks_install(
            periodic_task_model=PeriodicTask,
            interval_model=IntervalSchedule,
            periodic_tasks_model=PeriodicTasks,
            reset=reset,
        )
        for spec in periodic_specs():
            status = (
                "created" if spec.name in created else "reset" if spec.name in updated else "kept"
            )
            self.stdout.write(f"{status:8} {spec.name}: {spec.task} every {spec.every_s} s")
