"""The failover dashboard renders the history in the database as inline SVG charts
holding the right numbers."""

from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import pytest
from django.urls import reverse

from providers_app.models import BreakerState, CallRollup, FailoverEvent
from providers_app.selectors.call_stats import histogram_quantile
from providers_app.testing import breaker_state_set

NOW = datetime(2026, 1, 10, 12, 30, tzinfo=UTC)
TEN, ELEVEN = NOW.replace(hour=10, minute=0), NOW.replace(hour=11, minute=0)
URL = "admin:providers_app_dashboard_changelist"


class _Elements(HTMLParser):
    """Every element that carries data-* attributes, with its attributes and text."""

    def __init__(self):
        super().__init__()
        self.found: list[dict] = []
        self._open: list[dict] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if any(name.startswith("data-") for name in attributes):
            element = {"tag": tag, **attributes, "text": ""}
            self.found.append(element)
            self._open.append(element)

    def handle_endtag(self, tag):
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
    primary = make_provider(name="primary", priority=1)
    secondary = make_provider(name="secondary", priority=2)
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
        provider=primary, hour=TEN, successes=8, failures=2, first_attempts=10,
        latency_histogram={"100": 4, "500": 4}, final=True,
    )  # fmt: skip
    CallRollup.objects.create(
        provider=secondary, hour=ELEVEN, successes=4, slow_calls=1, rate_limited=1,
        latency_histogram={"1000": 5},
    )  # fmt: skip
    return primary, secondary


def _render(client, **params) -> _Elements:
    response = client.get(reverse(URL), params)
    assert response.status_code == 200
    parser = _Elements()
    parser.feed(response.content.decode())
    return parser


def test_failovers_per_hour_by_reason(operator_client, history):
    page = _render(operator_client)

    bars = {(b["data-hour"], b["data-reason"]): int(b["data-count"]) for b in page.select("rect")
            if "data-reason" in b}  # fmt: skip
    assert bars == {
        (TEN.isoformat(), "server_error"): 2,
        (TEN.isoformat(), "timeout"): 1,
        (ELEVEN.isoformat(), "server_error"): 3,
    }
    totals = {e["data-total"]: e["text"] for e in page.select("li") if "data-total" in e}
    assert totals["failovers"].split()[0] == "6"
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
        (d["data-provider"], d["data-hour"]): float(d["data-value"])
        for d in page.select("circle")
        if d["text"].split()[1:3] == ["success", "rate"]
    }
    assert dots == {
        ("primary", TEN.isoformat()): 80.0,
        ("secondary", ELEVEN.isoformat()): 83.33,
    }  # 0.8333 as %
    p95 = {
        d["data-provider"]: float(d["data-value"])
        for d in page.select("circle")
        if d["text"].split()[1] == "p95"
    }
    assert p95 == {"primary": 475.0, "secondary": 975.0}


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
    segments = [
        (s["data-state"], s["data-start"], s["data-end"])
        for s in page.select("rect")
        if "data-state" in s and s["text"].startswith("primary:")
    ]
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
