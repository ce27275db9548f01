"""`manage.py demo_setup`: an admin user and simulated providers for the local demo."""

import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from providers_app.models import Provider
from providers_app.simulator.server import DEMO_SPECS


class Command(BaseCommand):
    help = "Create (or reset the password of) the demo admin and seed simulated providers."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")

    def handle(self, *args, username: str, **options):
        password = secrets.token_urlsafe(12)
        user, _ = get_user_model().objects.get_or_create(
            username=username, defaults={"is_staff": True, "is_superuser": True}
        )
        user.is_staff = user.is_superuser = True
        user.set_password(password)
        user.save()
        if not Provider.objects.exists():
            for priority, spec in enumerate(DEMO_SPECS, start=1):
                Provider.objects.create(
                    name=spec.name,
                    kind=Provider.Kind.SIMULATED,
                    base_url=f"http://{spec.host}:{spec.port}/v1",
                    model=f"sim-{spec.name}",
                    priority=priority,
                    timeout_s=10,
                )
            self.stdout.write(f"Seeded {len(DEMO_SPECS)} simulated providers.")
        self.stdout.write(
            self.style.SUCCESS(
                f"Admin: http://127.0.0.1:8000/admin/  user {username!r}  password {password}"
            )
        )
