"""`manage.py create_client_key NAME`: a key for callers of the chat API, printed once."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from providers_app.services.client_keys import client_key_create


class Command(BaseCommand):
    help = (
        "Create an API key for a caller of /v1/chat/completions. The key is printed once "
        "and stored only as a digest; revoke it in the admin (Client keys)."
    )

    def add_arguments(self, parser):
        parser.add_argument("name", help="A unique name saying who uses the key.")

    def handle(self, *args, name: str, **options):
        try:
            created = client_key_create(name=name)
        except ValidationError as error:
            problems = "; ".join(
                f"{field}: {' '.join(messages)}" for field, messages in error.message_dict.items()
            )
            raise CommandError(f"Cannot create the key {name!r}: {problems}") from None
        # The key alone on stdout, so `KEY=$(manage.py create_client_key bot)` works.
        self.stdout.write(created.raw_key)
        self.stderr.write(
            f"Created client key {name!r} ({created.client_key.prefix}…). Copy it now: "
            "it is stored hashed and cannot be shown again.\n"
            "Use it as: Authorization: Bearer <key>"
        )
