"""`manage.py demo_setup`: an admin user and simulated providers for the local demo."""

import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from providers_app.models import Provider

DEMO_PROVIDERS = (
    ("primary", 8101),
    ("secondary", 8102),
    ("tertiary", 8103),
)


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
            for priority, (name, port) in enumerate(DEMO_PROVIDERS, start=1):
                Provider.objects.create(
                    name=name,
                    kind=Provider.Kind.SIMULATED,
                    base_url=f"http://127.0.0.1:{port}/v1",
                    model=f"sim-{name}",
                    priority=priority,
                    timeout_s=10,
                )
            self.stdout.write(f"Seeded {len(DEMO_PROVIDERS)} simulated providers.")
        self.stdout.write(
            self.style.SUCCESS(
                f"Admin: http://127.0.0.1:8000/admin/  user {username!r}  password {password}"
            )
        )
