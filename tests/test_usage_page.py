"""The admin's "Usage and cost" page: tokens, spend and failover cost by provider,
route and key over the chosen days, through HTTP, with a pinned clock."""

from datetime import UTC, date, datetime

import pytest
from django.urls import reverse

from providers_app.models import UsageLedger

TODAY = date(2026, 3, 10)
URL = "admin:providers_app_usagereport_changelist"


@pytest.fixture
def staff_client(client, django_user_model):
    user = django_user_model.objects.create_user(
        "staff", password="pw", is_staff=True, is_superuser=True
    )
    client.force_login(user)
    return client


@pytest.fixture
def ledger(db, fake_clock):
    fake_clock.set(datetime(2026, 3, 10, 15, 0, tzinfo=UTC))
    rows = [
        # day, provider, route, key, shard, calls, input, output, cost, failover extra
        (TODAY, "cheap", "chat", "team-a", 1, 3, 300, 90, 2_000_000, 0),
        (TODAY, "cheap", "chat", "team-a", 4, 1, 100, 30, 1_000_000, 0),
        (TODAY, "pricey", "chat", "team-b", 2, 2, 200, 60, 9_000_000, 7_500_000),
        (date(2026, 3, 1), "pricey", "bulk", "team-b", 0, 5, 500, 100, 20_000_000, 0),
    ]
    for day, provider, route, key, shard, calls, tokens_in, tokens_out, cost, extra in rows:
        UsageLedger.objects.create(
            day=day, provider=provider, route=route, key_name=key, shard=shard, calls=calls,
            input_tokens=tokens_in, output_tokens=tokens_out, cost_nusd=cost,
            failover_extra_nusd=extra,
        )  # fmt: skip


def _cells(html: str, table: str, name: str) -> str:
    start = html.index(f'id="{table}"')
    row = html.index(f'data-name="{name}"', start)
    return html[row : html.index("</tr>", row)]


def test_today_shows_spend_by_provider_route_and_key_and_the_failover_cost(staff_client, ledger):
    html = staff_client.get(reverse(URL), {"days": 1}).content.decode()
    assert 'data-first-day="2026-03-10"' in html
    assert 'data-cost="0.003000000"' in _cells(html, "usage-by-provider", "cheap")  # two shards
    assert 'data-cost="0.009000000"' in _cells(html, "usage-by-key", "team-b")
    assert 'data-failover-cost="0.007500000"' in _cells(html, "usage-by-route", "chat")
    assert "$0.0075</strong> failover cost" in html
    assert 'data-name="bulk"' not in html  # nine days ago: outside the range


def test_a_custom_range_includes_both_days(staff_client, ledger):
    html = staff_client.get(reverse(URL), {"start": "2026-03-01", "end": "2026-03-10"}).content
    html = html.decode()
    assert 'data-cost="0.029000000"' in _cells(html, "usage-by-provider", "pricey")
    assert "1100</strong> input tokens" in html


@pytest.mark.parametrize(
    ("params", "problem"),
    [({"start": "March"}, "YYYY-MM-DD"), ({"start": "2026-03-10", "end": "2026-03-01"}, "after")],
)
def test_a_bad_range_falls_back_to_seven_days_and_says_why(staff_client, ledger, params, problem):
    html = staff_client.get(reverse(URL), params).content.decode()
    assert problem in html
    assert 'data-first-day="2026-03-04"' in html


def test_the_page_needs_the_history_permission(client, django_user_model, db):
    user = django_user_model.objects.create_user("plain", password="pw", is_staff=True)
    client.force_login(user)
    assert client.get(reverse(URL)).status_code == 403


def test_the_console_shows_the_same_spend_for_the_days_its_range_touches(staff_client, ledger):
    html = staff_client.get(reverse("admin:providers_app_dashboard_changelist")).content.decode()
    panel = html[html.index('id="usage"') :]
    assert "2026-03-10 (UTC days)" in panel  # the live 15 minutes fall on one day
    assert 'data-metric="usage_cost">$0.0120<' in panel  # 2 + 1 + 9 million nano-dollars
    assert 'data-metric="usage_failover_cost">$0.0075<' in panel
    row = panel[panel.index('data-usage="provider"') :]
    assert 'data-cost="0.003000000"' in row[row.index('data-name="cheap"') :]
    assert 'data-name="bulk"' not in panel  # nine days ago: outside the range
    assert reverse(URL) in panel  # the whole usage page, one click away
