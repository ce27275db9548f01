"""The admin's "Usage and cost" page (selectors/usage.py reads the ledger).

`?days=1|7|30|90` picks the last days up to today (UTC), or `?start=` and `?end=`
(YYYY-MM-DD, both included) any range; a malformed or reversed range falls back
to the last 7 days and says so.
"""

from datetime import date

from django.contrib.admin import AdminSite
from django.db.models.options import Options
from django.http import HttpRequest
from django.template.response import TemplateResponse

from .engine.clock import get_clock
from .selectors.usage import last_days, usage_report

DAY_CHOICES = {1: "Today", 7: "Last 7 days", 30: "Last 30 days", 90: "Last 90 days"}
DEFAULT_DAYS = 7
MAX_RANGE_DAYS = 400  # FALLBACK_USAGE_RETENTION_DAYS' default: older days are pruned


def chosen_range(params, today: date) -> tuple[date, date, int | None, str]:
    """(first day, last day, the preset in force or None, a problem to show or "")."""
    if params.get("start") or params.get("end"):
        try:
            first = date.fromisoformat(params.get("start") or today.isoformat())
            last = date.fromisoformat(params.get("end") or today.isoformat())
        except ValueError:
            return *last_days(today, DEFAULT_DAYS), DEFAULT_DAYS, "Dates must be YYYY-MM-DD."
        if first > last or (last - first).days >= MAX_RANGE_DAYS:
            problem = f"The start must not be after the end, nor {MAX_RANGE_DAYS} days before it."
            return *last_days(today, DEFAULT_DAYS), DEFAULT_DAYS, problem
        return first, last, None, ""
    try:
        days = int(params.get("days", DEFAULT_DAYS))
    except ValueError:
        days = DEFAULT_DAYS
    days = days if days in DAY_CHOICES else DEFAULT_DAYS
    return *last_days(today, days), days, ""


def usage_page(request: HttpRequest, *, admin_site: AdminSite, opts: Options) -> TemplateResponse:
    today = get_clock().now().date()
    first, last, days, problem = chosen_range(request.GET, today)
    context = {
        **admin_site.each_context(request),
        "title": "Usage and cost",
        "opts": opts,
        "report": usage_report(first_day=first, last_day=last),
        "days": days,
        "day_choices": list(DAY_CHOICES.items()),
        "problem": problem,
    }
    return TemplateResponse(request, "admin/providers_app/usage.html", context)
