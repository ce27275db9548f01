"""Request traces, read-only: search by request id, open one from an event or an id.

A trace is reached three ways (issue 23 item 5): the event log's request id
links to it, `by-request/<id>/` opens the trace of the id a response carried
(X-Request-Id), and the list searches for an exact id.
"""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from ..models import RequestTrace
from ..timefmt import milliseconds_text, moment_html
from .common import CardListMedia, ReadOnlyAdmin

STEP_COLUMNS = (
    ("provider", "provider"),
    ("started_ms", "start"),
    ("duration_ms", "duration"),
    ("ttft_ms", "first token"),
    ("outcome", "outcome"),
    ("reason", "reason"),
    ("status", "status"),
    ("action", "decision"),
    ("why", "why"),
)
MS_COLUMNS = {"started_ms", "duration_ms", "ttft_ms"}


def trace_url_for(request_id: str) -> str:
    """The admin address that opens the trace of `request_id` (for links elsewhere)."""
    return reverse("admin:providers_app_requesttrace_by_request", args=[request_id])


@admin.register(RequestTrace)
class RequestTraceAdmin(ReadOnlyAdmin):
    Media = CardListMedia
    list_display = (
        "time",
        "request",
        "route",
        "outcome",
        "provider",
        "attempt_count",
        "failovers",
        "duration",
        "reason",
    )
    fields = (
        "time",
        "request_id",
        "route",
        "streamed",
        "outcome",
        "provider",
        "reason",
        "attempt_count",
        "failovers",
        "duration",
        "sampled",
        "steps_table",
        "events",
    )
    readonly_fields = ("time", "duration", "steps_table", "events")
    list_filter = ("outcome", "reason", "route", "streamed", "sampled", "created_at")
    search_fields = ("=request_id",)
    search_help_text = "Exact request id (the X-Request-Id header of the response)."
    date_hierarchy = "created_at"
    show_full_result_count = False

    @admin.display(description="time", ordering="created_at")
    def time(self, trace: RequestTrace):
        return moment_html(trace.created_at)

    @admin.display(description="duration", ordering="duration_ms")
    def duration(self, trace: RequestTrace) -> str:
        return milliseconds_text(trace.duration_ms)

    @admin.display(description="request id", ordering="request_id")
    def request(self, trace: RequestTrace) -> str:
        return format_html('<span class="request-id">{}</span>', trace.request_id)

    @admin.display(description="attempts, in order")
    def steps_table(self, trace: RequestTrace) -> str:
        head = format_html_join("", "<th>{}</th>", ((title,) for _, title in STEP_COLUMNS))
        rows = format_html_join(
            "",
            "<tr>{}</tr>",
            (
                (format_html_join("", '<td data-label="{}">{}</td>', _cells(step)),)
                for step in trace.steps
            ),
        )
        return format_html('<table class="trace-steps"><tr>{}</tr>{}</table>', head, rows)

    @admin.display(description="events")
    def events(self, trace: RequestTrace) -> str:
        url = reverse("admin:providers_app_failoverevent_changelist")
        return format_html('<a href="{}?q={}">events of this request</a>', url, trace.request_id)

    def get_urls(self):
        by_request = path(
            "by-request/<str:request_id>/",
            self.admin_site.admin_view(self.by_request_view),
            name="providers_app_requesttrace_by_request",
        )
        return [by_request, *super().get_urls()]

    def by_request_view(self, request: HttpRequest, request_id: str):
        """The trace of a request id: its page, or the list searched for it."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        trace = RequestTrace.objects.filter(request_id=request_id).first()
        if trace is not None:
            return HttpResponseRedirect(
                reverse("admin:providers_app_requesttrace_change", args=[trace.pk])
            )
        messages.info(
            request,
            f"No trace of request {request_id}: it was not sampled, or is older than "
            "FALLBACK_TRACE_RETENTION_DAYS.",
        )
        changelist = reverse("admin:providers_app_requesttrace_changelist")
        return HttpResponseRedirect(f"{changelist}?q={request_id}")


def _cells(step: dict):
    # Each cell carries its column's title: a phone shows an attempt as a card of them.
    for key, title in STEP_COLUMNS:
        value = step.get(key)
        if key in MS_COLUMNS:
            value = milliseconds_text(value)
        yield (title, value if value not in (None, "") else "-")
