"""The failover dashboard renders the history in the database as inline SVG charts
holding the right numbers, at every range, as fresh as the event log."""

from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import pytest
from django.urls import reverse

from providers_app.dashboard import charts as admin_charts
from providers_app.models import BreakerState, CallBucket, CallRollup, FailoverEvent
from providers_app.selectors.call_stats import histogram_quantile
from providers_app.services.housekeeping import call_counters_roll_up
from providers_app.testing import breaker_state_set

NOW = datetime(2026, 1, 10, 12, 30, tzinfo=UTC)
TEN, ELEVEN = NOW.replace(hour=10, minute=0), NOW.replace(hour=11, minute=0)
URL = "admin:providers_app_dashboard_changelist"


class _Elements(HTMLParser):
    """Every element that carries data-* attributes, with its attributes, its text
    and the id of the chart section it is in."""

    def __init__(self):
        super().__init__()
        self.found: list[dict] = []
        self._open: list[dict] = []
        self._section = ""

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "section":
            self._section = attributes.get("id", "")
        if any(name.startswith("data-") for name in attributes):
            element = {"tag": tag, **attributes, "text": "", "section": self._section}
            self.found.append(element)
            self._open.append(element)

    def handle_endtag(self, tag):
        if tag == "section":
            self._section = ""
        if self._open and self._open[-1]["tag"] == tag:
            self._open.pop()

    def handle_data(self, data):
        for element in self._open:
            element["text"] += data

    def select(self, tag: str, **attributes) -> list[dict]:
        return [
            e for e in self.found
            if e["tag"] == tag and all(e.get(f"data-{k}") == v for k, v in attributes.items())
        ]  # fmt: skip


def _event(kind, moment, provider=None, **fields) -> FailoverEvent:
    event = FailoverEvent.objects.create(kind=kind, provider=provider, **fields)
    FailoverEvent.objects.filter(pk=event.pk).update(created_at=moment)
    return event


@pytest.fixture
def history(make_provider, fake_clock):
    fake_clock.set(NOW)
    primary = make_provider(name="primary")
    secondary = make_provider(name="secondary")
    breaker_state_set(primary, state=BreakerState.State.FORCED_OPEN)
    failover = {"kind": "failover", "provider": primary}
    _event(
        moment=TEN + timedelta(minutes=15), reason="server_error", to_provider=secondary, **failover
    )
    _event(
        moment=TEN + timedelta(minutes=16), reason="server_error", to_provider=secondary, **failover
    )
    _event(moment=TEN + timedelta(minutes=40), reason="timeout", to_provider=secondary, **failover)
    _event(moment=ELEVEN + timedelta(minutes=5), reason="server_error", count=3, **failover)
    _event(moment=NOW - timedelta(days=2), reason="auth", **failover)  # only in the 7-day view
    _event("all_failed", TEN + timedelta(minutes=20), reason="all_failed", count=5)
    # The primary's breaker: opened, probed, closed, then drained by an operator.
    _event("breaker_opened", TEN + timedelta(minutes=20), primary, reason="failure_rate")
    _event("breaker_half_open", TEN + timedelta(minutes=50), primary, reason="open_expired")
    _event("breaker_closed", TEN + timedelta(minutes=51), primary, reason="probe_succeeded")
    _event("manual", ELEVEN + timedelta(minutes=30), primary, reason="force_open")
    _event("manual", ELEVEN + timedelta(minutes=31), primary, reason="provider_enabled")
    CallRollup.objects.create(
        provider=primary, period_start=TEN, successes=8, failures=2, first_attempts=10,
        latency_histogram={"100": 4, "500": 4}, total_histogram={"5000": 8}, final=True,
    )  # fmt: skip
    CallRollup.objects.create(
        provider=secondary, period_start=ELEVEN, successes=4, slow_calls=1, rate_limited=1,
        latency_histogram={"1000": 5}, total_histogram={"1000": 5}, final=True,
    )  # fmt: skip
    return primary, secondary


def _render(client, **params) -> _Elements:
    params.setdefault("range", "24h")
    response = client.get(reverse(URL), params)
    assert response.status_code == 200
    parser = _Elements()
    parser.feed(response.content.decode())
    return parser


def test_failovers_per_hour_by_reason(operator_client, history):
    page = _render(operator_client)

    bars = {(b["data-start"], b["data-reason"]): int(b["data-count"]) for b in page.select("rect")
            if "data-reason" in b}  # fmt: skip
    assert bars == {
        (TEN.isoformat(), "server_error"): 2,
        (TEN.isoformat(), "timeout"): 1,
        (ELEVEN.isoformat(), "server_error"): 3,
    }
    totals = {e["data-total"]: e["text"] for e in page.select("li") if "data-total" in e}
    assert totals["failover"].split()[0] == "6"
    assert totals["all_failed"].split()[0] == "5"
    assert totals["breaker_opened"].split()[0] == "1"
    assert totals["manual"].split()[0] == "2"


def test_success_rate_and_latency_percentiles_per_provider(operator_client, history):
    page = _render(operator_client)

    def cell(provider, metric):
        (row,) = [e for e in page.found if e.get("data-metric") == metric and e["tag"] == "td"
                  and e in _cells_of(page, provider)]  # fmt: skip
        return row["text"].strip()

    assert cell("primary", "attempts") == "10"
    assert cell("primary", "success_rate") == "80.0%"
    assert cell("primary", "p50_ms") == "100 ms"  # rank 4 of 8: the top of the <=100 ms bucket
    assert cell("primary", "p95_ms") == "475 ms"  # 250 + 250 * 3.6/4 within <=500 ms
    assert cell("secondary", "success_rate") == "83.3%"  # 5 answered of 6 (one 429)
    dots = {
        (d["data-provider"], d["data-start"]): float(d["data-value"])
        for d in page.select("circle", series="success rate")
    }
    assert dots == {
        ("primary", TEN.isoformat()): 80.0,
        ("secondary", ELEVEN.isoformat()): 83.33,
    }  # 0.8333 as %
    p95 = {
        d["data-provider"]: float(d["data-value"])
        for d in page.select("circle", series="p95")
        if d["section"] == "chart-first-output"
    }
    assert p95 == {"primary": 475.0, "secondary": 975.0}
    total_p95 = {
        d["data-provider"]: float(d["data-value"])
        for d in page.select("circle", series="p95")
        if d["section"] == "chart-total-time"
    }
    assert total_p95 == {"primary": 4850.0, "secondary": 975.0}
    assert cell("primary", "total_p50_ms") == "3.5 s"


def _cells_of(page: _Elements, provider: str) -> list[dict]:
    """The <td>s that follow the provider's <tr> and precede the next row."""
    cells, inside = [], False
    for element in page.found:
        if element["tag"] == "tr":
            inside = element.get("data-provider") == provider
        elif inside and element["tag"] == "td":
            cells.append(element)
    return cells


def test_breaker_state_over_time_from_transition_events(operator_client, history):
    page = _render(operator_client)

    lanes = {lane["data-provider"]: lane for lane in page.select("g") if "data-current" in lane}
    assert lanes["primary"]["data-current"] == "forced_open"
    segments = sorted(
        (
            (s["data-state"], s["data-start"], s["data-end"])
            for s in page.select("rect")
            if "data-state" in s and s["text"].startswith("primary:")
        ),
        key=lambda segment: segment[1],
    )
    window_start = (NOW.replace(minute=0) - timedelta(hours=23)).isoformat()
    at = lambda hour, minute: NOW.replace(hour=hour, minute=minute).isoformat()  # noqa: E731
    assert segments == [
        ("closed", window_start, at(10, 20)),
        ("open", at(10, 20), at(10, 50)),
        ("half_open", at(10, 50), at(10, 51)),
        ("closed", at(10, 51), at(11, 30)),
        ("forced_open", at(11, 30), NOW.isoformat()),
    ]
    secondary = [s for s in page.select("rect") if s["text"].startswith("secondary:")]
    assert [(s["data-state"], s["data-start"]) for s in secondary] == [("closed", window_start)]


def test_the_week_view_includes_older_events(operator_client, history):
    page = _render(operator_client, range="7d")

    assert page.select("div")[0]["data-range"] == "7d"
    reasons = {b["data-reason"] for b in page.select("rect") if "data-reason" in b}
    assert reasons == {"server_error", "timeout", "auth"}


def test_an_empty_history_renders_without_charts_data(operator_client, make_provider):
    make_provider(name="lonely")
    response = operator_client.get(reverse(URL))
    content = response.content.decode()
    assert "No failovers in this window." in content
    assert "No traffic in this window." in content
    assert 'data-provider="lonely"' in content


def test_the_dashboard_is_on_the_admin_index_and_needs_the_event_view_permission(
    operator_client, client, django_user_model
):
    assert reverse(URL) in operator_client.get(reverse("admin:index")).content.decode()
    staff = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    client.force_login(staff)
    assert client.get(reverse(URL)).status_code == 403


@pytest.mark.parametrize(
    ("histogram", "q", "expected"),
    [
        ({}, 0.5, None),
        ({"50": 10}, 0.5, 25.0),
        ({"100": 4, "500": 4}, 0.5, 100.0),
        ({"100": 4, "500": 4}, 0.95, 475.0),
        ({"inf": 3}, 0.5, 45000.0),
    ],
)
def test_histogram_quantile(histogram, q, expected):
    assert histogram_quantile(q, histogram) == expected


# --- ranges, freshness and drawing -------------------------------------------


def _bucket(provider, moment, **counts) -> CallBucket:
    return CallBucket.objects.create(provider=provider, bucket_start=moment, **counts)


@pytest.mark.parametrize(
    ("range_key", "bins", "minutes"),
    [("15m", 60, 0.25), ("1h", 120, 0.5), ("6h", 24, 15), ("24h", 24, 60), ("7d", 168, 60)],
)
def test_each_range_has_its_bins_and_draws_the_failovers_in_it(
    operator_client, make_provider, fake_clock, range_key, bins, minutes
):
    fake_clock.set(NOW)
    primary = make_provider(name="primary")
    _event("failover", NOW - timedelta(minutes=7), primary, reason="timeout")

    response = operator_client.get(reverse(URL), {"range": range_key})

    window = response.context["dashboard"].window
    assert (window.key, len(window.bins), window.bin) == (
        range_key, bins, timedelta(minutes=minutes)
    )  # fmt: skip
    assert window.bins[-1] <= NOW < window.bins[-1] + window.bin
    page = _Elements()
    page.feed(response.content.decode())
    (bar,) = [b for b in page.select("rect") if "data-reason" in b]
    expected_bin = window.bin_of(NOW - timedelta(minutes=7))
    assert bar["data-start"] == expected_bin.isoformat()


def test_the_dashboard_opens_on_the_live_15_minutes(operator_client, make_provider, fake_clock):
    fake_clock.set(NOW)
    assert operator_client.get(reverse(URL)).context["range_key"] == "15m"
    response = operator_client.get(reverse(URL), {"range": "1y"})
    assert response.context["range_key"] == "15m"


def _figures(client, range_key="1h") -> dict[str, str]:
    page = _render(client, range=range_key)
    return {
        e["data-metric"]: e["text"].strip()
        for e in _cells_of(page, "primary")
        if "data-metric" in e
    }


def test_figures_include_the_minutes_not_rolled_up_yet(operator_client, make_provider, fake_clock):
    """Right after an outage the event log shows the failovers, and the dashboard
    the failures behind them: the one-second counters are read before any roll-up."""
    fake_clock.set(NOW)
    primary = make_provider(name="primary")
    make_provider(name="secondary")
    for seconds in (110, 100, 90):
        _event("failover", NOW - timedelta(seconds=seconds), primary, reason="server_error")
        _bucket(primary, NOW - timedelta(seconds=seconds), failures=1, first_attempts=1)
    _bucket(primary, NOW - timedelta(minutes=20), successes=1, latency_ms_sum=200,
            total_ms_sum=200, first_attempts=1)  # fmt: skip

    before = _figures(operator_client)

    assert (before["attempts"], before["failures"], before["success_rate"]) == ("4", "3", "25.0%")
    # The roll-up changes nothing: every call is counted once, rolled up or not.
    call_counters_roll_up(now=NOW)
    assert _figures(operator_client) == before
    # Past the buckets' FINE_HISTORY (an hour): the 6-hour range still spans those minutes.
    fake_clock.set(NOW + timedelta(minutes=70))
    call_counters_roll_up()
    assert CallRollup.objects.filter(final=True).count() == 2
    assert not CallBucket.objects.exists()
    assert _figures(operator_client, "6h") == before


def test_one_hour_of_traffic_draws_lines_not_only_dots(operator_client, make_provider, fake_clock):
    fake_clock.set(NOW)
    primary = make_provider(name="primary")
    for minute in range(60):
        _bucket(primary, NOW - timedelta(minutes=minute), successes=1, latency_ms_sum=300,
                total_ms_sum=2000, first_attempts=1)  # fmt: skip

    page = _render(operator_client, range="1h")

    lines = {(line["section"], line["data-series"]): line["points"].split()
             for line in page.select("polyline")}  # fmt: skip
    # 30 s bins: one point per minute with calls, joined in one line
    assert len(lines[("chart-success-rate", "primary")]) == 60
    assert len(lines[("chart-first-output", "primary p50")]) == 60
    assert len(lines[("chart-total-time", "primary p95")]) == 60


def _outage_rects(page, provider="primary") -> list[dict]:
    rects = page.select("rect")
    return [r for r in rects if r.get("data-state") and r["text"].startswith(provider)]


@pytest.mark.parametrize("range_key", ["1h", "6h", "24h", "7d"])
def test_a_two_minute_outage_stays_visible_at_every_range(
    operator_client, make_provider, fake_clock, range_key
):
    fake_clock.set(NOW)
    primary = make_provider(name="primary")
    _event("breaker_opened", NOW - timedelta(minutes=30), primary, reason="failure_rate")
    _event("breaker_closed", NOW - timedelta(minutes=28), primary, reason="probe_succeeded")

    rects = _outage_rects(_render(operator_client, range=range_key))

    (opened,) = [r for r in rects if r["data-state"] == "open"]
    assert float(opened["width"]) >= admin_charts.MIN_SEGMENT_WIDTH
    # Painted after the closed stretches around it, so they cannot cover it.
    assert rects[-1] is opened


def test_totals_count_every_kind_of_event_including_kinds_added_later(
    operator_client, make_provider, fake_clock
):
    fake_clock.set(NOW)
    primary = make_provider(name="primary")
    _event("continuation", NOW - timedelta(minutes=3), primary, reason="stream_cut", count=2)

    page = _render(operator_client)

    totals = {e["data-total"]: e["text"].split() for e in page.select("li") if "data-total" in e}
    assert totals["continuation"][0] == "2"
    assert "continued" in totals["continuation"]  # its label: "answer continued on ..."
    assert totals["failover"][0] == "0"  # the headline kinds show even at zero


def test_latency_is_drawn_on_a_log_scale_so_a_slow_provider_does_not_flatten_the_others(
    operator_client, make_provider, fake_clock
):
    fake_clock.set(NOW)
    fast = make_provider(name="fast")
    slow = make_provider(name="slow")
    _bucket(fast, NOW - timedelta(minutes=3), successes=1, latency_ms_sum=90, total_ms_sum=90)
    _bucket(slow, NOW - timedelta(minutes=3), successes=1, latency_ms_sum=30000,
            total_ms_sum=30000)  # fmt: skip

    response = operator_client.get(reverse(URL), {"range": "1h"})

    chart = response.context["dashboard"].first_output
    fast_p50 = next(d for d in chart.dots if d.provider == "fast" and d.series == "p50")
    assert chart.axis_y - fast_p50.y >= admin_charts.PLOT_HEIGHT / 5
    assert [t.label for t in chart.y_ticks] == ["10 ms", "100 ms", "1 s", "10 s", "100 s"]


# --- labels that fit ---------------------------------------------------------


@pytest.mark.parametrize(
    ("ms", "label"),
    [(0, "0 ms"), (250, "250 ms"), (1000, "1 s"), (1500, "1.5 s"), (10000, "10 s"),
     (45000, "45 s")],
)  # fmt: skip
def test_durations_read_as_people_write_them(ms, label):
    assert admin_charts.duration_label(ms) == label


# About the width of a character of the charts' 11 px text, in SVG units.
_CHAR = 7


@pytest.mark.parametrize("range_key", ["1h", "6h", "24h", "7d"])
def test_time_labels_stay_inside_the_chart(range_key):
    from providers_app.dashboard.reads import dashboard_window

    window = dashboard_window(range_key, now=NOW + timedelta(minutes=59))
    ticks = admin_charts.time_ticks(window)

    assert ticks
    for tick in ticks:
        width = len(tick.label) * _CHAR
        left = {"start": 0, "middle": width / 2, "end": width}[tick.anchor]
        assert tick.position - left >= 0, tick
        assert tick.position - left + width <= admin_charts.WIDTH, tick
    if range_key == "7d":
        assert ticks[0].label == "Sun 04 Jan"


def test_value_and_lane_labels_fit_left_of_the_plot():
    room = admin_charts.PLOT_LEFT - 6
    longest_lane = admin_charts._short("a-provider-with-a-very-long-name")
    assert longest_lane.endswith("…")
    assert len(longest_lane) * _CHAR <= room
    for label in ("100%", "100 s", "100 ms", "secondary"):
        assert len(label) * _CHAR <= room


def test_each_route_shows_its_failovers_continuations_and_all_failed_requests(
    operator_client, make_provider, fake_clock
):
    from providers_app.models import Route

    fake_clock.set(NOW)
    primary = make_provider(name="primary")
    Route.objects.create(name="chat", is_default=True)
    Route.objects.create(name="docs")
    recent = NOW - timedelta(minutes=3)
    _event("failover", recent, primary, route="chat", reason="server_error", count=3)
    _event("continuation", recent, primary, route="chat", reason="stream_cut")
    _event("all_failed", recent, route="docs", reason="all_failed", count=2)
    _event("failover", NOW - timedelta(days=2), primary, route="docs")  # outside 24 h

    page = _render(operator_client)

    cells = [e for e in page.select("td") if e["section"] == "route-table"]
    routes = [e["data-route"] for e in page.select("tr") if e["section"] == "route-table"]
    per_route = len(cells) // len(routes)
    rows = {
        route: {
            cell["data-metric"]: cell["text"] for cell in cells[i * per_route : (i + 1) * per_route]
        }
        for i, route in enumerate(routes)
    }
    assert rows == {
        "chat": {"failovers": "3", "continuations": "1", "all_failed": "0"},
        "docs": {"failovers": "0", "continuations": "0", "all_failed": "2"},
    }


# --- annotations: transitions, manual actions and configuration changes -----


def test_transitions_actions_and_config_changes_are_drawn_at_their_time_and_link_to_their_event(
    admin_client, admin_user, make_provider, fake_clock
):
    from django.utils import timezone

    from providers_app.admin_forms import provider_version
    from providers_app.services.operator import operator_breaker_force_open
    from tests.factories import provider_admin_form

    fake_clock.set(timezone.now())  # events are stamped by the database's clock
    primary = make_provider(name="primary")
    opened = FailoverEvent.objects.create(
        kind="breaker_opened", provider=primary, reason="consecutive_failures"
    )
    operator_breaker_force_open(provider_id=primary.pk, until=None, actor=admin_user)
    primary.refresh_from_db()
    edited = admin_client.post(
        reverse("admin:providers_app_provider_change", args=[primary.pk]),
        provider_admin_form(
            name="primary", model="gpt-4o", version=provider_version(primary.updated_at)
        ),
    )
    assert edited.status_code == 302, edited.context["adminform"].form.errors
    config = FailoverEvent.objects.get(reason="config_changed")
    assert (config.kind, config.actor, config.provider) == ("manual", admin_user, primary)
    assert "Model" in config.detail or "model" in config.detail

    fake_clock.set(timezone.now())
    response = admin_client.get(reverse(URL))
    content = response.content.decode()
    forced = FailoverEvent.objects.get(reason="force_open")
    for event in (opened, forced, config):
        link = reverse("admin:providers_app_failoverevent_change", args=[event.pk])
        # on every time chart, a mark at its time, linking to its event
        assert content.count(f'href="{link}"') == 6, event.kind
    marks = {m.event_id: m for m in response.context["dashboard"].marks}
    assert f"by {admin_user.get_username()}" in marks[forced.pk].title
    assert f"by {admin_user.get_username()}" in marks[config.pk].title
    assert marks[opened.pk].x <= marks[forced.pk].x <= marks[config.pk].x
    assert 'class="now-marker"' in content
