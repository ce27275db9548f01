"""`manage.py providers export` / `manage.py providers import FILE`: configuration as JSON."""

import json
import sys

from django.core.management.base import BaseCommand, CommandError
from django.core.serializers.json import DjangoJSONEncoder

from providers_app.services.providers import (
    ProviderImportError,
    provider_export,
    provider_import,
)


class Command(BaseCommand):
    help = (
        "Export the providers and the routes (each with its providers in order: the "
        "only order there is) as JSON, or import (create or update by name) from a file."
    )

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser(
            "export", help="Print every provider's configuration and every route's order as JSON."
        )
        importer = sub.add_parser(
            "import", help="Create or update providers from FILE ('-': stdin)."
        )
        importer.add_argument("file")

    def handle(self, *args, action: str, **options):
        if action == "export":
            self.stdout.write(json.dumps(provider_export(), indent=2, cls=DjangoJSONEncoder))
            return
        data = self._read_json(options["file"])
        try:
            summary = provider_import(data=data)
        except ProviderImportError as exc:
            for problem in exc.problems:
                self.stderr.write(str(problem))
            raise CommandError(str(exc)) from None
        self.stdout.write(
            self.style.SUCCESS(
                f"Imported {len(summary.created)} new and "
                f"{len(summary.updated)} updated provider(s); "
                f"{len(summary.routes_created)} new and "
                f"{len(summary.routes_updated)} updated route(s)."
            )
        )

    @staticmethod
    def _read_json(path: str):
        try:
            if path == "-":
                return json.load(sys.stdin)
            with open(path, encoding="utf-8") as handle:
                return json.load(handle)
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc.strerror}") from None
        except json.JSONDecodeError as exc:
            raise CommandError(f"{path} is not valid JSON: {exc}") from None
