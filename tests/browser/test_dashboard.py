"""The failover dashboard in Chromium, as an admin: every range renders with data,
chosen from the range selector, at 375, 1366 and 1920 px with nothing
overlapping, overflowing or clipped, and no JavaScript errors (the `screen_for`
fixture fails on any); it refreshes itself, marks "now" and the events, keeps
one colour per provider, and its chart text stays readable at every width."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from providers_app.models import CallBucket, CallRollup, FailoverEvent
from providers_app.selectors.call_stats import period_of

URL = reverse("admin:providers_app_dashboard_changelist")
RANGES = {
    "15m": "Last 15 minutes",
    "1h": "Last hour",
    "6h": "Last 6 hours",
    "24h": "Last 24 hours",
    "7d": "Last 7 days",
}
WIDTHS = (375, 1366, 1920)

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
                first_attempts=10, answered_first_try=9, latency_ms_sum=9 * first_ms,
                total_ms_sum=9 * total_ms,
                latency_histogram={"500" if first_ms < 500 else "10000": 9},
                total_histogram={"5000" if total_ms < 5000 else "45000": 9}, final=True,
            )  # fmt: skip
        period += timedelta(minutes=30)
    for minute in range(60):
        moment = now - timedelta(minutes=minute, seconds=5)
        CallBucket.objects.create(provider=primary, bucket_start=moment, successes=1,
                                  failures=minute % 7 == 0, first_attempts=1,
                                  answered_first_try=1,
                                  latency_ms_sum=250, total_ms_sum=3000)  # fmt: skip
        CallBucket.objects.create(provider=secondary, bucket_start=moment, successes=1,
                                  first_attempts=1, answered_by_fallback=1, latency_ms_sum=12000,
                                  total_ms_sum=30000)  # fmt: skip
    for hours in (0.2, 0.7, 3, 5, 20, 50, 100, 150):
        _event("failover", now - timedelta(hours=hours), primary, reason="server_error",
               to_provider=secondary)  # fmt: skip
    _event("failover", now - timedelta(minutes=25), primary, reason="timeout")
    _event("breaker_opened", now - timedelta(minutes=30), primary, reason="failure_rate")
    _event("breaker_closed", now - timedelta(minutes=28), primary, reason="probe_succeeded")
    return primary, secondary


# The rendered size of the smallest chart label, and the chart's share of the page width.
_CHART_TEXT = """() => {
  const sizes = [...document.querySelectorAll("svg.chart text")]
    .map((t) => t.getBoundingClientRect().height).filter((h) => h > 0);
  const chart = document.querySelector("svg.chart").getBoundingClientRect().width;
  return { smallest: Math.min(...sizes), chartShare: chart / window.innerWidth };
}"""


def _wait_for_refresh(page, after: int = 0) -> int:
    """Wait until the live body was swapped in more than `after` times; the count."""
    page.wait_for_function(
        f"Number(document.getElementById('dashboard-body').dataset.refreshed || 0) > {after}"
    )
    return int(page.locator("#dashboard-body").get_attribute("data-refreshed"))


@pytest.mark.parametrize("width", WIDTHS)
def test_the_dashboard_renders_each_range_with_data(
    screen_for, admin_user, a_week_of_history, width
):
    screen = screen_for(admin_user, width=width)
    page = screen.go(URL)
    shown = "15m"  # the default: the live view

    for key, label in RANGES.items():
        if key != shown:  # chosen from the range selector
            with page.expect_navigation():
                page.get_by_role("navigation", name="Time range").get_by_role(
                    "link", name=label, exact=True
                ).click()
            shown = key
        _wait_for_refresh(page)  # drawn at this screen's width
        dashboard = page.locator("#failover-dashboard")
        assert dashboard.get_attribute("data-range") == key
        assert page.locator(".dashboard-ranges strong").inner_text() == label
        if key != "15m":  # the week's failovers are older than 15 minutes
            assert page.locator("#chart-failovers rect.bar").count() >= 1, key
        for chart in ("success-rate", "first-output", "total-time"):
            assert page.locator(f"#chart-{chart} polyline").count() >= 2, (key, chart)
        assert page.locator("#chart-answers rect.bar").count() >= 1, key
        if key != "15m":
            opened = page.locator('#chart-breaker rect[data-state="open"]')
            assert opened.count() == 1, key
            assert opened.bounding_box()["width"] >= 3, key  # a two-minute outage, visible
            # the opening and the closing, marked on every chart, linking to their events
            assert page.locator("#chart-answers a.mark").count() == 2, key
        assert page.locator("#chart-answers .now-marker").count() == 1
        assert screen.layout_problems() == [], key
        assert page.evaluate(_CLIPPED_TEXT) == [], key
        text = page.evaluate(_CHART_TEXT)
        assert text["smallest"] >= 9, (key, text)  # 11 px labels, not 5 px
        if width == 1920:
            assert text["chartShare"] > 0.8, text  # the width is used
        screen.shot(f"dashboard-{key}-{width}")


def test_the_live_view_refreshes_itself_without_reloading(
    screen_for, admin_user, a_week_of_history
):
    primary, secondary = a_week_of_history
    screen = screen_for(admin_user, width=1366)
    page = screen.go(URL)
    refreshed = _wait_for_refresh(page)
    page.evaluate("window.stillTheSamePage = true")
    before = page.locator('#provider-table tr[data-provider="secondary-with-a-long-name"] '
                          'td[data-metric="answered"]').inner_text()  # fmt: skip

    CallBucket.objects.create(provider=secondary, bucket_start=timezone.now(), shard=7,
                              successes=40, answered_by_fallback=40, first_attempts=40,
                              latency_ms_sum=400, total_ms_sum=800)  # fmt: skip
    _event("breaker_opened", timezone.now(), primary, reason="consecutive_failures")
    _wait_for_refresh(page, after=refreshed)

    assert page.evaluate("window.stillTheSamePage") is True  # no reload
    after = page.locator('#provider-table tr[data-provider="secondary-with-a-long-name"] '
                         'td[data-metric="answered"]').inner_text()  # fmt: skip
    assert int(after) == int(before) + 40
    by_fallback = page.locator('#callers-view [data-metric="answered_by_fallback"] strong')
    assert int(by_fallback.inner_text()) == 15 + 40  # the fixture's quarter hour, and these
    mark = page.locator('#chart-answers a.mark[data-kind="breaker_opened"]').last
    assert "/admin/providers_app/failoverevent/" in mark.get_attribute("href")
    screen.shot("dashboard-live-refreshed")


def test_each_provider_keeps_one_colour_and_never_a_state_colour(
    screen_for, admin_user, a_week_of_history
):
    from providers_app.dashboard.colours import STATE_COLOURS

    screen = screen_for(admin_user, width=1366)
    colours = {}
    for key in ("15m", "24h"):
        page = screen.go(f"{URL}?range={key}")
        _wait_for_refresh(page)
        for row in page.locator("#provider-table tr[data-provider]").all():
            name, colour = row.get_attribute("data-provider"), row.get_attribute("data-colour")
            assert colours.setdefault(name, colour) == colour, (key, name)
            lines = page.locator(f'#chart-success-rate circle[data-provider="{name}"]')
            assert {lines.nth(i).get_attribute("fill") for i in range(lines.count())} == {colour}
    assert len(set(colours.values())) == 2
    assert not set(colours.values()) & {c.lower() for c in STATE_COLOURS.values()}


def test_dashboard_text_has_a_contrast_of_at_least_4_5(screen_for, admin_user, a_week_of_history):
    from tests.browser.test_console import _CONTRAST

    screen = screen_for(admin_user, width=1366)
    page = screen.go(f"{URL}?range=1h")
    _wait_for_refresh(page)
    low = []
    for element in page.locator(
        "#failover-dashboard :is(p, li, td, th, dt, dd, h2, a, strong, span):not(svg *):visible"
    ).all():
        if not element.inner_text().strip():
            continue
        ratio = page.evaluate(_CONTRAST, element.element_handle())
        if ratio < 4.5:
            low.append((element.inner_text()[:30], round(ratio, 2)))
    assert low == []
