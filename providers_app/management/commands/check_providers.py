"""`manage.py check_providers`: run the health checks now and print a table.

The same checks beat runs (lease, results, breaker effects), for every enabled
provider or the ones named. Exits non-zero when a check failed, so scripts and
deploy hooks can act on it.
"""

from django.core.management.base import BaseCommand, CommandError

from providers_app.models import Provider
from providers_app.services.health import HealthCheckReport, health_checks_run

COLUMNS = ("provider", "result", "latency", "status", "breaker", "failed in a row", "detail")


class Command(BaseCommand):
    help = "Health-check providers now (every enabled one, or those named) and print a table."

    def add_arguments(self, parser):
        parser.add_argument("names", nargs="*", help="Provider names (default: every enabled one).")
        parser.add_argument(
            "--all",
            action="store_true",
            dest="include_disabled",
            help="Include disabled providers.",
        )

    def handle(self, *args, names: list[str], include_disabled: bool, **options):
        ids = None
        if names:
            found = dict(Provider.objects.filter(name__in=names).values_list("name", "pk"))
            unknown = sorted(set(names) - set(found))
            if unknown:
                raise CommandError(f"Unknown provider(s): {', '.join(unknown)}")
            ids = list(found.values())
        reports = health_checks_run(provider_ids=ids, include_disabled=include_disabled)
        if not reports:
            self.stdout.write("No providers to check.")
            return
        rows = [_row(report) for report in reports]
        widths = [max(len(COLUMNS[i]), *(len(r[i]) for r in rows)) for i in range(len(COLUMNS))]
        self.stdout.write("  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True)))
        self.stdout.write("  ".join("-" * w for w in widths))
        for row, report in zip(rows, reports, strict=True):
            line = "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
            style = (
                self.style.SUCCESS
                if report.ok
                else (self.style.ERROR if report.ok is False else self.style.WARNING)
            )
            self.stdout.write(style(line))
        failed = [r.provider_name for r in reports if r.ok is False]
        if failed:
            raise CommandError(f"{len(failed)} check(s) failed: {', '.join(failed)}")


def _row(report: HealthCheckReport) -> tuple[str, ...]:
    if report.skipped:
        result = f"skipped ({report.skipped})"
    else:
        result = "ok" if report.ok else f"FAIL {report.error_class}".strip()
    return (
        report.provider_name,
        result,
        f"{report.latency_ms:.0f} ms" if report.latency_ms is not None else "-",
        str(report.status_code or "-"),
        report.breaker_state or "-",
        str(report.consecutive_failures),
        report.detail[:60],
    )
