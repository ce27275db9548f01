"""The failover dashboard in Chromium, as an admin: every range renders with data,
chosen from the range selector, at 1366 px with nothing overlapping, overflowing
or clipped, and no JavaScript errors (the `screen_for` fixture fails on any)."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from providers_app.models import CallBucket, CallRollup, FailoverEvent
from providers_app.selectors.call_stats import period_of

URL = reverse("admin:providers_app_dashboard_changelist")
RANGES = {"1h": "Last hour", "6h": "Last 6 hours", "24h": "Last 24 hours", "7d": "Last 7 days"}

# Every <text> of every chart inside its SVG's viewBox: a clipped label ("econdary",
# ".0000 ms", "Wed 0") sticks out of it.
_CLIPPED_TEXT = """() => {
  const clipped = [];
  for (const svg of document.querySelectorAll("svg.chart")) {
    const view = svg.viewBox.baseVal;
    for (const text of svg.querySelectorAll("text")) {
      const box = text.getBBox();
      if (box.x < view.x - 0.5 || box.x + box.width > view.x + view.width + 0.5
          || box.y < view.y - 0.5 || box.y + box.height > view.y + view.height + 0.5) {
        clipped.push(`${svg.closest("section").id}: "${text.textContent}"`);
      }
    }
  }
  return clipped;
}"""


def _event(kind, moment, provider=None, **fields):
    event = FailoverEvent.objects.create(kind=kind, provider=provider, **fields)
    FailoverEvent.objects.filter(pk=event.pk).update(created_at=moment)


@pytest.fixture
def a_week_of_history(transactional_db):
    """Two providers with a week of rolled-up traffic, the last hour still in the
    one-second counters, failovers throughout and a two-minute outage 30 min ago."""
    from tests.factories import provider_create

    now = timezone.now()
    primary = provider_create(name="primary")
    secondary = provider_create(name="secondary-with-a-long-name")
    finished_before = period_of(now - timedelta(hours=1))
    period = finished_before - timedelta(days=7)
    while period < finished_before:
        for provider, first_ms, total_ms in ((primary, 300, 2500), (secondary, 9000, 24000)):
            CallRollup.objects.create(
                provider=provider, period_start=period, successes=9, failures=1,
                first_attempts=10, latency_ms_sum=9 * first_ms, total_ms_sum=9 * total_ms,
                latency_histogram={"500" if first_ms < 500 else "10000": 9},
                total_histogram={"5000" if total_ms < 5000 else "45000": 9}, final=True,
            )  # fmt: skip
        period += timedelta(minutes=30)
    for minute in range(60):
        moment = now - timedelta(minutes=minute, seconds=5)
        CallBucket.objects.create(provider=primary, bucket_start=moment, successes=1,
                                  failures=minute % 7 == 0, first_attempts=1,
                                  latency_ms_sum=250, total_ms_sum=3000)  # fmt: skip
        CallBucket.objects.create(provider=secondary, bucket_start=moment, successes=1,
                                  first_attempts=1, latency_ms_sum=12000,
                                  total_ms_sum=30000)  # fmt: skip
    for hours in (0.2, 0.7, 3, 5, 20, 50, 100, 150):
        _event("failover", now - timedelta(hours=hours), primary, reason="server_error",
               to_provider=secondary)  # fmt: skip
    _event("failover", now - timedelta(minutes=25), primary, reason="timeout")
    _event("breaker_opened", now - timedelta(minutes=30), primary, reason="failure_rate")
    _event("breaker_closed", now - timedelta(minutes=28), primary, reason="probe_succeeded")
    return primary, secondary


def test_the_dashboard_renders_each_range_with_data(screen_for, admin_user, a_week_of_history):
    screen = screen_for(admin_user)
    page = screen.go(URL)
    shown = "24h"  # the default

    for key, label in RANGES.items():
        if key != shown:  # chosen from the range selector
            with page.expect_navigation():
                page.get_by_role("navigation", name="Time range").get_by_role(
                    "link", name=label, exact=True
                ).click()
            shown = key
        dashboard = page.locator("#failover-dashboard")
        assert dashboard.get_attribute("data-range") == key
        assert page.locator(".dashboard-ranges strong").inner_text() == label
        assert page.locator("#chart-failovers rect.bar").count() >= 1, key
        for chart in ("success-rate", "first-output", "total-time"):
            assert page.locator(f"#chart-{chart} polyline").count() >= 2, (key, chart)
        opened = page.locator('#chart-breaker rect[data-state="open"]')
        assert opened.count() == 1, key
        assert opened.bounding_box()["width"] >= 3, key  # a two-minute outage, visible
        assert screen.layout_problems() == [], key
        assert page.evaluate(_CLIPPED_TEXT) == [], key
        screen.shot(f"dashboard-{key}")
